"""Evaluation metrics: FID and KID on Inception features, PSNR and SSIM on paired images.

Metrics take tensors, feature arrays or an iterable of generated batches, never a training loop; this
package imports only torch, numpy, scipy and ``ganslim.errors`` / ``ganslim.atomic``.
"""

from ganslim.metrics.fid import (
    FidKidResult,
    compute_fid_kid,
    extract_features,
    feature_statistics,
    frechet_distance,
    kernel_inception_distance,
    load_statistics,
    quantize_uint8,
    save_statistics,
)
from ganslim.metrics.image import RunningMean, mean_psnr_ssim, psnr, ssim
from ganslim.metrics.sr import rgb_to_y, sr_psnr, sr_ssim
from ganslim.metrics.inception import (
    WEIGHTS_ENV_VAR,
    WEIGHTS_FILENAME,
    FIDInceptionV3,
    InceptionFeatures,
    default_weights_path,
    load_inception,
)

__all__ = [
    "FIDInceptionV3",
    "FidKidResult",
    "InceptionFeatures",
    "RunningMean",
    "WEIGHTS_ENV_VAR",
    "WEIGHTS_FILENAME",
    "compute_fid_kid",
    "default_weights_path",
    "extract_features",
    "feature_statistics",
    "frechet_distance",
    "kernel_inception_distance",
    "load_inception",
    "load_statistics",
    "mean_psnr_ssim",
    "psnr",
    "quantize_uint8",
    "rgb_to_y",
    "save_statistics",
    "sr_psnr",
    "sr_ssim",
    "ssim",
]
