"""GAN Compression for SPADE (GauGAN) teachers: the mobile SPADE student family the pipeline picks when the teacher
takes label maps (its signature).

* :mod:`.networks` - the label-map teacher, the student sized from it, the distilled blocks, the discriminator;
* :mod:`.data` - label maps and photos as the stages' ``{"A", "B"}`` items, held out and val;
* :mod:`.distill` - the supernet and fine-tune stages with GauGAN's objective.
"""
