"""Image-to-image generators: ResNet and U-Net (pix2pix / CycleGAN), the mobile ResNet and its once-for-all
supernet (GAN Compression), and OMGD's deep teachers. Importing this package registers them all."""

from ganslim.archs.translation import deep, mobile_resnet, resnet, super_mobile_resnet, unet

__all__ = ["deep", "mobile_resnet", "resnet", "super_mobile_resnet", "unet"]
