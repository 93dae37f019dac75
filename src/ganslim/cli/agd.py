"""What `ganslim compress agd` shows of AutoGAN-Distiller: its flags and notes.

``ganslim compress agd --teacher CKPT --data DIR --budget-macs 6G`` searches a compact generator under the budget,
guided only by the teacher, and retrains it by distillation, in one resumable run folder
(:mod:`ganslim.methods.agd.pipeline`); :mod:`ganslim.cli.compress` builds the command from :data:`COMMANDS`.
"""

from __future__ import annotations

from ganslim.cli.common import COMPRESS_FLAGS, MethodCommand

TITLE = "AutoGAN-Distiller"
METHOD = "agd"
DESCRIPTION = """\
agd searches operators and widths of a compact generator under a MACs or latency budget by differentiable search,
guided only by the teacher (no discriminator), then retrains the derived network from scratch by distillation
(AutoGAN-Distiller, ICML 2020); the teacher's signature picks image translation or x4 super-resolution."""
AGD_FLAGS = {
    **COMPRESS_FLAGS,
    "--data": ("data", "DIR", "translation: train/ (paired A|B images) or trainA/ trainB/ (unpaired); "
                              "super-resolution: train/ of HR images"),
    "--teacher": ("teacher", "CKPT", "a pix2pix / CycleGAN generator (translation) or an x4 RRDBNet / ESRGAN one "
                                     "(super-resolution): generator.pt, a reference .pth or a run folder"),
    "--budget-macs": ("budget_macs", "MACS", "MACs budget of one --size input, e.g. 6G"),
    "--budget-latency": ("budget_latency", "MS", "latency budget in ms of one --size input, from a per-operator "
                                                 "latency table measured on this machine's CPU"),
    "--size": ("size", "PX", "input side of the budget (default 256; super-resolution: the LR input)"),
    "--macs-convention": ("macs_convention", "CONV", "published (default, AGD's count) or true"),
    "--threads": ("threads", "N", "CPU threads when measuring the latency table (default: torch's)"),
    "--epochs": ("epochs", "N", "retrain: epochs at the initial learning rate (default 100)"),
    "--epochs-decay": ("epochs_decay", "N", "retrain: epochs of linear learning-rate decay (default 100)"),
    "--iterations": ("iterations", "N", "retrain: length in steps instead of epochs"),
    "--vgg16-weights": ("vgg16_weights", "FILE", "translation: torchvision's vgg16-397923af.pth for the style and "
                                                 "content terms ('none': off)"),
    "--vgg19-weights": ("vgg19_weights", "FILE", "super-resolution: torchvision's vgg19-dcbb9e9d.pth for the content "
                                                 "term ('none': off)"),
}
NOTES = """\
Stages: warmup (the supernet by the sandwich rule) -> search (architecture and weight steps on the two halves of
the training images, the penalty weight adapted after each evaluation) -> derive (the argmax network, its MACs
checked against the cost table, refused if none fits) -> retrain (from scratch, by distillation) -> export
(generator.pt, summary.json). Stage lengths: --set warmup_epochs=N / warmup_iterations=N, search_epochs /
search_iterations; --epochs / --iterations are the retrain's. Without VGG weights the perceptual terms are off
(said once; summary.json records the terms that ran)."""
SET_EXAMPLE = "search_iterations=500"

COMMANDS = {METHOD: MethodCommand((AGD_FLAGS,), NOTES, SET_EXAMPLE,
                                  "continue an agd run folder: skip finished stages, resume the rest")}
OTHER_COMMANDS = ()  # subcommands that are no method
