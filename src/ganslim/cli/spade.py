"""What `ganslim train spade` adds to the `train` command: its typed flags, shown in a group of their own.

``ganslim train spade --data DIR`` trains NVlabs' SPADE generator on label maps and photos (any layout
:mod:`ganslim.data.label_datasets` reads); ``--arch spade_cityscapes`` takes that preset's label encoding, size and
width as defaults. Every other option (sizes, loss weights) is a ``--set`` key (``--show-config`` lists them).
"""

from __future__ import annotations

METHOD = "spade"
FLAGS = {
    "--arch": ("arch", "ARCH", "generator preset giving the defaults: spade (182 labels + edges, 256x256), "
                               "spade_cityscapes (35 + edges, 256x512) or spade_coco (182 + dontcare + edges)"),
    "--layout": ("layout", "LAYOUT", "dataset layout: cityscapes, ade20k, coco or folders (default: detected)"),
}
