"""Editing with a StyleGAN2 generator: edit directions in W (:mod:`.directions`) and the web editor
(:mod:`.web`), which previews edits with Anycost sub-generators."""

from ganslim.editing.directions import apply_edit, fit_boundaries, load_directions, save_directions, sefa_directions

__all__ = ["apply_edit", "fit_boundaries", "load_directions", "save_directions", "sefa_directions"]
