"""Typed config schema: one dataclass per config group, registered in Hydra's ConfigStore.

The YAML files under `conf/` extend these schemas (`defaults: - /schema/<group>/<name>@_here_`),
so a typo'd key or a wrong type fails when Hydra composes the config. `check_config` then checks
the value ranges that a type cannot express and returns plain dataclass objects.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field, fields, is_dataclass
from enum import StrEnum
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from sweeplab.errors import SweeplabError


class Mode(StrEnum):
    train = "train"
    eval = "eval"
    predict = "predict"
    summary = "summary"  # the model's layer table and parameter count; trains nothing


class Activation(StrEnum):
    relu = "relu"
    leaky_relu = "leaky_relu"
    tanh = "tanh"
    scaled_tanh = "scaled_tanh"  # LeCun's 1.7159 * tanh(2x / 3)
    sigmoid = "sigmoid"
    gelu = "gelu"


class Init(StrEnum):
    default = "default"  # torch's own
    xavier = "xavier"
    kaiming = "kaiming"


class Pool(StrEnum):
    max = "max"
    avg = "avg"


class C3(StrEnum):
    full = "full"  # every C3 map sees all 6 S2 maps
    lecun = "lecun"  # LeCun et al. 1998, table I: 60 of the 96 map pairs


class Resize(StrEnum):
    pad = "pad"  # LeCun's border: 28x28 centred in a zero frame
    resize = "resize"  # bilinear interpolation


# --- model group -------------------------------------------------------------------------------


@dataclass
class ModelConfig:
    name: str = MISSING
    # The course-work bug as an ablation: a softmax at the end of forward(), before the
    # cross-entropy (which applies its own). Off by default; a warning is logged when on.
    softmax_in_forward: bool = False

    def check(self) -> None:
        """Raise SweeplabError naming the first out-of-range field (types are Hydra's job)."""
        if hasattr(self, "dropout"):
            _require(0 <= self.dropout < 1, "model.dropout", self.dropout, "must be in [0, 1)")


@dataclass
class LeNet5Config(ModelConfig):
    name: str = "lenet5"
    kernel_size: int = 5  # 5: the classic layout (C1 padded at 28x28); 3: the 3x3 variant
    extra_pool: bool = False  # one more 2x2 pooling after S4 (the 3x3 course variant has it)
    activation: Activation = Activation.relu
    batch_norm: bool = False
    dropout: float = 0.0
    init: Init = Init.default
    pool: Pool = Pool.max
    channels: list[int] = field(default_factory=lambda: [6, 16])  # C1 and C3 feature maps
    fc: list[int] = field(default_factory=lambda: [120, 84])  # hidden fully connected widths

    def check(self) -> None:
        super().check()
        _require(self.kernel_size in (3, 5), "model.kernel_size", self.kernel_size, "use 5 or 3")
        _require(
            len(self.channels) == 2 and min(self.channels) >= 1,
            "model.channels",
            self.channels,
            "must be two positive counts (C1, C3), e.g. [6,16]",
        )
        _require(
            all(width >= 1 for width in self.fc),
            "model.fc",
            self.fc,
            "must be a list of positive widths, e.g. [120,84] (or [] for none)",
        )


@dataclass
class LeNet5ClassicConfig(ModelConfig):
    name: str = "lenet5_classic"
    activation: Activation = Activation.tanh
    c3: C3 = C3.full  # lecun: LeCun's table, each C3 map sees 3, 4 or 6 of the 6 S2 maps


@dataclass
class MLPConfig(ModelConfig):
    name: str = "mlp"
    hidden: list[int] = field(default_factory=lambda: [72, 36])
    activation: Activation = Activation.relu
    dropout: float = 0.0
    init: Init = Init.default
    # A parameter count to match with `depth` equal hidden widths (replaces `hidden`).
    match_params: int | None = None
    depth: int = 2

    def check(self) -> None:
        super().check()
        _require(
            bool(self.hidden) and min(self.hidden) >= 1,
            "model.hidden",
            self.hidden,
            "must be a non-empty list of positive widths, e.g. [72,36]",
        )
        _require(self.depth >= 1, "model.depth", self.depth, "must be at least 1")
        if self.match_params is not None:
            _require(
                self.match_params >= 1,
                "model.match_params",
                self.match_params,
                "must be a positive parameter count or null",
            )


@dataclass
class AlexNetConfig(ModelConfig):
    """Krizhevsky et al. 2012 for 1-channel 227x227 input (`alexnet`) or a small version."""

    name: str = "alexnet"
    batch_norm: bool = True  # after each conv, in place of the 2012 paper's LRN (as in Keras)
    dropout: float = 0.5  # before the two hidden fully connected layers


@dataclass
class AlexNetSmallConfig(AlexNetConfig):
    name: str = "alexnet_small"
    width: float = 1.0  # multiplies every channel count and hidden width

    def check(self) -> None:
        super().check()
        _require(0 < self.width <= 8, "model.width", self.width, "must be in (0, 8]")


# --- data groups -------------------------------------------------------------------------------


@dataclass
class DatasetConfig:
    name: str = MISSING  # fashion | mnist
    root: str = "data"
    download: bool = False
    val_size: int = 5000  # carved from the 60k training images
    split_seed: int = 0  # fixed, so every run and seed sees the same validation images
    subset: int | None = None  # keep N training images (and at most N val / test) for quick runs


# --- optimisation groups -----------------------------------------------------------------------


@dataclass
class OptimizerConfig:
    name: str = MISSING
    lr: float = MISSING


@dataclass
class SGDConfig(OptimizerConfig):
    name: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    nesterov: bool = True


@dataclass
class AdamConfig(OptimizerConfig):
    name: str = "adam"
    lr: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999


@dataclass
class SchedulerConfig:
    name: str = "none"  # none | onecycle | cosine
    warmup: float = 0.0  # fraction of all steps spent warming up (onecycle: its pct_start)


@dataclass
class RegularizationConfig:
    weight_decay: float = 0.0
    noise_std: float = 0.0  # Gaussian input noise on training batches, in pixel units (0..1)
    label_smoothing: float = 0.0
    hflip: bool = False  # mirror a random half of each training batch (augmentation)


# --- the whole run -----------------------------------------------------------------------------


@dataclass
class PredictConfig:
    n: int = 5


@dataclass
class RunConfig:
    # A name for a set of overrides that belong together (a study's arm, e.g. from
    # conf/lenet_variant/); first here so that reports group by it before the keys it sets.
    variant: str | None = None
    model: Any = MISSING
    dataset: DatasetConfig = MISSING
    optimizer: Any = MISSING
    scheduler: SchedulerConfig = MISSING
    regularization: RegularizationConfig = MISSING
    input_size: int = 28  # images are padded or resized to input_size x input_size
    resize: Resize = Resize.pad
    seed: int = 0
    epochs: int = 5
    batch_size: int = 256
    eval_batch_size: int = 1024
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    threads: int = 0  # torch intra-op threads; 0 keeps torch's default (one per core)
    compile: bool = False  # torch.compile the model (pays off on GPUs; see benchmarks/)
    amp: bool = False  # bfloat16 mixed precision (autocast) for training and evaluation
    mode: Mode = Mode.train
    ckpt: str | None = None  # checkpoint for mode=eval / mode=predict
    predict: PredictConfig = field(default_factory=PredictConfig)
    figures: bool = True
    progress: bool = True


MODEL_SCHEMAS: dict[str, type[ModelConfig]] = {
    "lenet5": LeNet5Config,
    "lenet5_classic": LeNet5ClassicConfig,
    "mlp": MLPConfig,
    "alexnet": AlexNetConfig,
    "alexnet_small": AlexNetSmallConfig,
}
OPTIMIZER_SCHEMAS: dict[str, type[OptimizerConfig]] = {
    "sgd": SGDConfig,
    "adam": AdamConfig,
    "adamw": AdamConfig,
}
DATASETS = ("fashion", "mnist")
SCHEDULERS = ("none", "onecycle", "cosine")

# Keys that change how a run executes but not what it computes; left out of the config hash.
RUNTIME_KEYS = ("mode", "ckpt", "predict", "threads", "progress", "figures", "device")


def register_configs() -> None:
    """Store the schemas in Hydra's ConfigStore (call once before composing)."""
    cs = ConfigStore.instance()
    cs.store(group="schema", name="run", node=RunConfig)
    for name, schema in MODEL_SCHEMAS.items():
        cs.store(group="schema/model", name=name, node=schema)
    for name, schema in OPTIMIZER_SCHEMAS.items():
        cs.store(group="schema/optimizer", name=name, node=schema(name=name))
    cs.store(group="schema/dataset", name="dataset", node=DatasetConfig)
    cs.store(group="schema/scheduler", name="scheduler", node=SchedulerConfig)
    cs.store(group="schema/regularization", name="regularization", node=RegularizationConfig)


def _require(ok: bool, key: str, value: object, rule: str) -> None:
    if not ok:
        raise SweeplabError(f"invalid config: {key}={value!r}: {rule}")


def _reject_unknown_keys(node: DictConfig, prefix: str = "") -> None:
    """`+key=value` bypasses struct mode, so compare every typed node with its schema."""
    schema = OmegaConf.get_type(node)
    known = {f.name for f in fields(schema)} if is_dataclass(schema) else None
    for key in node:
        name = f"{prefix}{key}"
        if known is not None and key not in known:
            raise SweeplabError(
                f"invalid config: unknown key {name!r}; known keys here: {sorted(known)}"
            )
        child = node._get_node(key)
        if isinstance(child, DictConfig):
            _reject_unknown_keys(child, f"{name}.")


def check_config(cfg: DictConfig) -> RunConfig:
    """Check value ranges and return the config as dataclass objects; raise on the first bad one."""
    _reject_unknown_keys(cfg)
    run: RunConfig = OmegaConf.to_object(cfg)  # type: ignore[assignment]
    _require(run.epochs >= 1, "epochs", run.epochs, "must be at least 1")
    _require(run.batch_size >= 1, "batch_size", run.batch_size, "must be at least 1")
    _require(run.eval_batch_size >= 1, "eval_batch_size", run.eval_batch_size, "must be >= 1")
    _require(run.threads >= 0, "threads", run.threads, "must be >= 0 (0 = torch's default)")
    _require(run.predict.n >= 1, "predict.n", run.predict.n, "must be at least 1")

    run.model.check()

    opt = run.optimizer
    _require(opt.name in OPTIMIZER_SCHEMAS, "optimizer.name", opt.name, "unknown optimizer")
    _require(math.isfinite(opt.lr) and opt.lr > 0, "optimizer.lr", opt.lr, "must be > 0")
    sched = run.scheduler
    _require(sched.name in SCHEDULERS, "scheduler.name", sched.name, f"use one of {SCHEDULERS}")
    _require(0 <= sched.warmup < 1, "scheduler.warmup", sched.warmup, "must be in [0, 1)")

    reg = run.regularization
    _require(reg.weight_decay >= 0, "regularization.weight_decay", reg.weight_decay, "must be >= 0")
    _require(reg.noise_std >= 0, "regularization.noise_std", reg.noise_std, "must be >= 0")
    _require(
        0 <= reg.label_smoothing < 1,
        "regularization.label_smoothing",
        reg.label_smoothing,
        "must be in [0, 1)",
    )

    data = run.dataset
    _require(data.name in DATASETS, "dataset.name", data.name, f"use one of {DATASETS}")
    _require(
        1 <= data.val_size <= 59_000,
        "dataset.val_size",
        data.val_size,
        "must be between 1 and 59000 (it is carved from the 60000 training images)",
    )
    if data.subset is not None:
        _require(data.subset >= 1, "dataset.subset", data.subset, "must be >= 1 or null")

    _require(run.input_size >= 8, "input_size", run.input_size, "must be at least 8")
    if run.resize == Resize.pad:
        _require(
            run.input_size >= 28 and (run.input_size - 28) % 2 == 0,
            "input_size",
            run.input_size,
            "padding centres the 28x28 image, so the size must be 28 + an even number; "
            "add resize=resize for other sizes",
        )

    if run.mode in (Mode.eval, Mode.predict):
        _require(
            bool(run.ckpt),
            "ckpt",
            run.ckpt,
            f"mode={run.mode.value} needs a checkpoint: "
            "add ckpt=outputs/<date>/<time>/checkpoints/best.pt",
        )
    return run


def config_hash(cfg: DictConfig) -> str:
    """A short hash of everything in the resolved config that can change a run's numbers."""
    container = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    assert isinstance(container, dict)
    for key in RUNTIME_KEYS:
        container.pop(key, None)
    text = json.dumps(container, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
