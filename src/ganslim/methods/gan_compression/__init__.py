"""GAN Compression (Li et al., CVPR 2020): distil a once-for-all supernet from a pix2pix / CycleGAN teacher (mobile
ResNet students) or a SPADE / GauGAN teacher (mobile SPADE students, :mod:`.spade`), search it under a MACs or latency
budget without retraining, fine-tune the chosen sub-network, export it.

* :mod:`.config` - :class:`DistillConfig`, the options of the training stages, and the paper's defaults;
* :mod:`.networks` - the frozen teacher, the student sized from it, distilled layers, adapters, discriminator;
* :mod:`.data` - held-out training images and the val split, and the metrics on them;
* :mod:`.distill` - the two training methods (``gan-compression-supernet``, ``gan-compression-finetune``);
* :mod:`.scoring` - extracting, recalibrating and scoring sub-networks on held-out training images;
* :mod:`.search` - the search stage (``gan-compression-search``), over :mod:`ganslim.compress.search`;
* :mod:`.export` - the compact student and teacher vs student (``gan-compression-export``);
* :mod:`.inherit` - what a stage run as a command of its own takes from the stage before;
* :mod:`.family` - the student family a run picks from the teacher's signature (mobile ResNet or mobile SPADE);
* :mod:`.pipeline` - all stages in one resumable run folder (``ganslim compress gan-compression``).
"""

STAGES = ("supernet", "search", "finetune", "export")  # the pipeline's, in order (defined here: no torch import)
