"""Editing with a StyleGAN2 generator (Anycost GAN's loop): :mod:`.encoder` (image -> W+, ``ganslim train encoder``),
:mod:`.projection` (W+ optimised to reconstruct a photo, ``ganslim project``), edit directions in W
(:mod:`.directions`) and the web editor (:mod:`.web`), which previews edits with Anycost sub-generators."""

from ganslim.editing.directions import apply_edit, fit_boundaries, load_directions, save_directions, sefa_directions
from ganslim.editing.encoder import Encoder, load_encoder
from ganslim.editing.projection import project

__all__ = ["Encoder", "apply_edit", "fit_boundaries", "load_directions", "load_encoder", "project", "save_directions",
           "sefa_directions"]
