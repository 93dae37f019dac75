"""AutoGAN-Distiller's run options (:class:`AGDConfig`): the teacher, the data, one budget, the search's settings,
each stage's length; :class:`AGDStageConfig` adds what a stage reads from the stages before it.

``epochs`` / ``epochs_decay`` (or ``iterations`` / ``kimg``) are the retrain stage's length, as in ``ganslim train``;
``warmup_*`` and ``search_*`` are the other two training stages'.
"""

from __future__ import annotations

from dataclasses import dataclass

from ganslim.config import ImageTranslationConfig, option
from ganslim.errors import GanslimError

METHOD = "agd"
TITLE = "AutoGAN-Distiller"  # the method, as messages name it
TRANSLATION, SUPER_RESOLUTION = "translation", "super-resolution"
PERCEPTUAL_OFF = "none"
TEACHER_TARGET, GROUND_TRUTH = "teacher", "ground_truth"
RETRAIN_TARGETS = (TEACHER_TARGET, GROUND_TRUTH)


@dataclass(frozen=True)
class AGDConfig(ImageTranslationConfig):
    """Everything ``ganslim compress agd`` reads (see the module docstring)."""

    teacher: str = option("", "the teacher: a pix2pix / CycleGAN generator (image translation) or an x4 RRDBNet / "
                              "ESRGAN generator (super-resolution); its signature picks the task")
    budget_macs: str = option("", "MACs budget of one size x size input, e.g. 6G ('': none; give one budget)")
    budget_latency: float = option(0.0, "latency budget in ms of one size x size input on this machine's CPU, "
                                        "predicted from a per-operator latency table measured here (0: none)",
                                   min=0.0)
    macs_convention: str = option("published", "MACs convention of budget_macs and the summary: published "
                                                "(torchprofile's, transposed convs at their output resolution, as AGD "
                                                "counts) or true", choices=("published", "true"))
    size: int = option(256, "input side the budget is for (translation: the image; super-resolution: the "
                            "low-resolution image)", min=8)
    threads: int = option(0, "CPU threads when measuring the latency table (0: torch's)", min=0)
    budget_floor: float = option(0.5, "the penalty weight halves after an evaluation whose derived network costs "
                                      "less than this fraction of the way from the search space's smallest network "
                                      "to the budget (it doubles above the budget)",
                                 above=0.0, max=1.0)
    penalty_weight: float = option(0.01, "starting weight of the compute penalty: penalty = weight x expected cost "
                                         "/ budget", above=0.0)
    eval_every: int = option(10, "search: steps between evaluations (derive by argmax, predict its cost, adapt the "
                                 "penalty weight)", min=1)
    student_width: int = option(0, "the student's largest width: translation ngf, super-resolution num_feat (0: the "
                                   "teacher's)", min=0)
    cells: int = option(0, "searched cells (0: AGD's 9 for translation, 5 for super-resolution)", min=0)
    ops_per_cell: int = option(5, "super-resolution: mixed operators per cell (AGD: 5)", min=2)
    gt_size: int = option(128, "super-resolution: HR crop side of a training item (its LR crop is gt_size / 4)",
                          min=4)
    gt: str = option("", "super-resolution: BasicSR's paired training data, a folder of GT (HR) images, with lq "
                         "(default: DATA/train's HR images, downsampled x4)")
    lq: str = option("", "super-resolution: the LQ images paired with gt by name, each its GT's size / 4")
    warmup_epochs: int = option(25, "warm-up: epochs of supernet training (sandwich rule)", min=0)
    warmup_iterations: int = option(0, "warm-up: length in steps instead of warmup_epochs (0: off)", min=0)
    search_epochs: int = option(25, "search: epochs of alternating architecture and weight steps, over half the "
                                    "training images each", min=0)
    search_iterations: int = option(0, "search: length in steps instead of search_epochs (0: off)", min=0)
    weight_lr: float = option(1e-3, "warm-up and search: Adam learning rate of the supernet weights (AGD: 1e-3)",
                              above=0.0)
    weight_grad_clip: float = option(5.0, "warm-up and search: gradient-norm clip of the supernet weights (AGD: 5)",
                                     min=0.0)
    arch_lr: float = option(3e-4, "search: Adam learning rate of the architecture parameters, betas 0.5 / 0.999 "
                                  "(AGD: 3e-4)", above=0.0)
    lr: float = option(2e-4, "retrain: Adam learning rate of the derived network", above=0.0)
    beta1: float = option(0.5, "retrain: Adam beta1", min=0.0, max=0.999999)
    beta2: float = option(0.999, "retrain: Adam beta2", min=0.0, max=0.999999)
    retrain_target: str = option(TEACHER_TARGET, "retrain: what the derived network learns: 'teacher' (the "
                                                 "teacher's output, AGD) or 'ground_truth' (paired or super-resolution "
                                                 "data: the same network, objective, data and steps without the "
                                                 "teacher, the from-scratch control)", choices=RETRAIN_TARGETS)
    vgg16_weights: str = option("", "translation: torchvision's vgg16-397923af.pth for the style and content terms "
                                    "('none': off; default: $GANSLIM_VGG16_WEIGHTS, then ~/.cache/ganslim)")
    vgg19_weights: str = option("", "super-resolution: torchvision's vgg19-dcbb9e9d.pth for the content term "
                                    "('none': off; default: $GANSLIM_VGG19_WEIGHTS, then ~/.cache/ganslim)")
    load_size: int = option(286, "translation: resize images to this size first", min=1)
    crop_size: int = option(256, "translation: then crop this size", min=1)
    batch_size: int = option(1, "images per step (AGD: 1 for translation)", min=1)

    def check(self) -> None:
        super().check()
        if not self.teacher:
            raise GanslimError("no teacher: pass --teacher CKPT (a pix2pix / CycleGAN generator, or an x4 RRDBNet)")
        if bool(self.budget_macs) == bool(self.budget_latency):
            raise GanslimError("give one budget: --budget-macs (e.g. 6G) or --budget-latency (ms on this CPU)"
                               + (", not both" if self.budget_macs else ""))
        if bool(self.gt) != bool(self.lq):
            given, missing = ("gt", "lq") if self.gt else ("lq", "gt")
            raise GanslimError(f"{given} is set but {missing} is not: paired super-resolution data needs both folders")
        if self.gt and not self.data:  # the paired folders are the data (and name the run folder)
            object.__setattr__(self, "data", self.gt)
        for stage in ("warmup", "search"):
            if getattr(self, f"{stage}_epochs") == 0 and getattr(self, f"{stage}_iterations") == 0:
                raise GanslimError(f"the {stage} stage has no length: set {stage}_epochs or {stage}_iterations")


@dataclass(frozen=True)
class AGDStageConfig(AGDConfig):
    """A training stage's config: the run's, its own length, and the files of the stages before it."""

    supernet: str = option("", "search: the warm-up's supernet.pt")
    cost_table: str = option("", "search: the run's cost_table.json (the budget's per-operator costs)")
    derived: str = option("", "retrain: the run's derived.json (the derived architecture)")
