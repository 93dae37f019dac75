"""What `ganslim train stylegan2` adds to the `train` command: its typed flags, shown in a group of their own.

``ganslim train stylegan2 --data FOLDER --kimg 25`` trains at the images' size (``--size PX`` to state it, with
``--set resize=true`` to resize other sizes). Network sizes, loss weights and intervals are ``--set`` keys
(``--show-config`` lists them).
"""

from __future__ import annotations

METHOD = "stylegan2"
FLAGS = {
    "--size": ("size", "PX", "image side to train at, a power of two (default: the images' own side)"),
    "--augment": ("augment", "POLICY", "DiffAugment policy for small datasets: color,translation,cutout (any of them; "
                                       "default none)"),
    "--inception-weights": ("inception_weights", "FILE", "FID Inception weights for validation and best.pt ('none': "
                                                         "no FID; default: $GANSLIM_INCEPTION_WEIGHTS, then "
                                                         "~/.cache/ganslim)"),
}
