"""What `ganslim train esrgan` adds to the `train` command: its typed flags, shown in a group of their own.

``ganslim train esrgan --data DIR`` trains the PSNR-oriented RRDBNet (``--stage psnr``, the default);
``ganslim train esrgan --stage gan --init RUN --data DIR`` trains ESRGAN from it. Every other option (network
sizes, crop size, loss weights) is a ``--set`` key (``--show-config`` lists them).
"""

from __future__ import annotations

METHOD = "esrgan"
FLAGS = {
    "--stage": ("stage", "STAGE", "psnr (default: the PSNR-oriented RRDBNet, L1) or gan (ESRGAN, from --init)"),
    "--init": ("init", "CKPT", "generator to start from: a psnr-stage run folder, its generator.pt or an ESRGAN / "
                               "BasicSR .pth (needed by --stage gan)"),
    "--scale": ("scale", "S", "super-resolution factor: 4 (default), 2 or 1"),
    "--gt": ("gt", "DIR", "paired training GT (HR) images, with --lq (default: the HR images of DATA/train)"),
    "--lq": ("lq", "DIR", "paired training LQ images, each its GT's size / scale, paired by name"),
    "--val-gt": ("val_gt", "DIR", "paired validation GT images, with --val-lq (default: DATA/val HR images)"),
    "--val-lq": ("val_lq", "DIR", "paired validation LQ images"),
}
# A flag of more than one method (esrgan's gan stage and spade), shown in a group of its own.
VGG19_FLAGS = {
    "--vgg19-weights": ("vgg19_weights", "FILE", "torchvision's vgg19-dcbb9e9d.pth for the perceptual term (esrgan: "
                                                 "its gan stage; 'none': off; default: $GANSLIM_VGG19_WEIGHTS, then "
                                                 "~/.cache/ganslim)"),
}
