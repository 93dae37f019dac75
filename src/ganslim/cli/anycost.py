"""What `ganslim compress anycost` shows of Anycost GAN's training.

``ganslim compress anycost --teacher CKPT --data DIR`` fine-tunes a StyleGAN2 teacher in one resumable run folder
(multi-resolution, then adaptive channels, then the export of ``generator.pt`` and ``summary.json``);
:mod:`ganslim.cli.compress` builds the command from :data:`COMMANDS`, with the flags and config handling of every
compress method (:mod:`ganslim.cli.common`).
"""

from __future__ import annotations

from ganslim.cli.common import RUN_FLAGS, MethodCommand

TITLE = "Anycost GAN"
METHOD = "anycost"
DESCRIPTION = """\
anycost fine-tunes a StyleGAN2 generator so that each of its sub-generators (stopped early at a lower resolution,
running the first channels of each layer) renders a consistent preview of the full image (Anycost GAN, CVPR 2021)."""
ANYCOST_FLAGS = {
    "--data": ("data", "DIR", "a folder of the teacher's training images (same-size squares; --set resize=true "
                              "resizes others)"),
    "--teacher": ("teacher", "CKPT", "the StyleGAN2 teacher: generator.pt, a train stylegan2 run folder or a "
                                     "rosinality / NVIDIA checkpoint"),
    **RUN_FLAGS,
    "--kimg": ("kimg", "KIMG", "multi-resolution stage length in thousands of images (default 1400)"),
    "--iterations": ("iterations", "N", "multi-resolution stage length in steps, instead of --kimg"),
    "--channels-kimg": ("channels_kimg", "KIMG", "adaptive-channel stage length in thousands of images "
                                                 "(default 9100)"),
    "--channels-iterations": ("channels_iterations", "N", "adaptive-channel stage length in steps, instead of "
                                                          "--channels-kimg"),
    "--channel-sampling": ("channel_sampling", "MODE", "adaptive-channel stage: uniform, flexible or sandwich "
                                                       "(default)"),
    "--vgg-weights": ("vgg_weights", "FILE", "torchvision's vgg16-397923af.pth for the perceptual consistency term "
                                             "('none': off; default: $GANSLIM_VGG16_WEIGHTS, then ~/.cache/ganslim)"),
}
NOTES = """\
Stages: multi-resolution (2 of the top 4 sides a step, multi-resolution D from the teacher's when it has one) ->
adaptive-channels (channels sorted, a channel configuration a step, generator-conditioned D) -> export
(generator.pt: a plain stylegan2 whose sub-generators --resolution / --channels select; summary.json: params, MACs
and fidelity to the teacher per sub-generator). Without VGG16 weights the consistency loss is MSE alone."""
SET_EXAMPLE = "sampled_resolutions=1"

COMMANDS = {METHOD: MethodCommand((ANYCOST_FLAGS,), NOTES, SET_EXAMPLE, "continue an anycost run folder")}
OTHER_COMMANDS = ()  # subcommands that are no method
