"""Anycost GAN (Lin et al., CVPR 2021) training: ``ganslim compress anycost --teacher CKPT --data FOLDER``.

A staged run (:mod:`ganslim.engine.staged`) that fine-tunes a StyleGAN2 teacher so that its sub-generators (stopped
early at a lower resolution and/or running the first k channels of each layer) render consistent previews:

* :mod:`.config` - :class:`AnycostConfig` (Anycost's recipe; a length per stage);
* :mod:`.sampling` - the per-step draws: resolutions, channel configurations, their discriminator codes;
* :mod:`.losses` - the consistency loss (MSE, plus VGG16 perceptual with weights) against downsampled targets;
* :mod:`.training` - the two engine methods, :class:`MultiResolution` and :class:`AdaptiveChannels`;
* :mod:`.pipeline` - the staged run and its final export (``generator.pt``, ``summary.json``).

Imports nothing heavy: the method registry reads :data:`STAGES` without loading torch.
"""

STAGES = ("multi-resolution", "adaptive-channels", "export")
