"""Typed config schema: one dataclass per config group, registered in Hydra's ConfigStore.

The YAML files under `conf/` extend these schemas (`defaults: - /schema/<group>/<name>@_here_`)
and state only what differs from them, so a typo'd key or a wrong type fails when Hydra
composes the config and every default has one home. Model schemas live beside their models
(`models/<name>.py`); datasets are entries of `datasets.py`. `check_config` then checks the
value ranges that a type cannot express, fills in the sizes left to the model and dataset,
and returns plain dataclass objects: the one typed config a run reads.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass, field, fields, is_dataclass
from enum import StrEnum
from typing import Any, get_type_hints

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from sweeplab.datasets import DATASETS, dataset_spec
from sweeplab.errors import SweeplabError, closest_key, require
from sweeplab.models import MODELS, ModelConfig, model_spec
from sweeplab.run_rule import Stale

log = logging.getLogger(__name__)

# Marks a key that changes how a run executes, not what it computes: left out of the config
# hash, of Hydra's job folder names and of the factors a report compares.
RUNTIME = {"runtime": True}


class Mode(StrEnum):
    train = "train"
    eval = "eval"  # test loss and accuracy of a checkpoint
    predict = "predict"  # a few test images with a checkpoint's predictions
    summary = "summary"  # the model's layer table and parameter count; trains nothing


# objective= -> the Summary field a run returns to a search
OBJECTIVES = {"val_accuracy": "best_val_accuracy", "params": "params",
              "train_seconds": "train_seconds"}  # fmt: skip
STALE_CHOICES = "use stop (the default), rerun (train again) or keep (keep as they are)"


class Resize(StrEnum):
    pad = "pad"  # LeCun's border: the image centred in a zero frame
    resize = "resize"  # bilinear interpolation


class OptimizerName(StrEnum):
    sgd = "sgd"
    adam = "adam"  # L2 weight decay
    adamw = "adamw"  # decoupled weight decay


class SchedulerName(StrEnum):
    none = "none"  # a constant learning rate (after the optional warmup)
    onecycle = "onecycle"  # Smith 2018: warm up to optimizer.lr, then anneal towards 0
    cosine = "cosine"  # cosine decay to 0 after a linear warmup


@dataclass
class DatasetConfig:
    name: str = MISSING  # an entry of datasets.DATASETS: fashion, mnist, kmnist, emnist, cifar10
    root: str = field(default="data", metadata=RUNTIME)  # torchvision's layout below it
    download: bool = field(default=False, metadata=RUNTIME)  # let torchvision fetch it
    val_size: int = 5000  # carved from the training images
    split_seed: int = 0  # fixed, so every run and seed sees the same validation images
    subset: int | None = None  # keep N training images (and at most N val / test) for quick runs


@dataclass
class OptimizerConfig:
    name: OptimizerName = MISSING
    lr: float = MISSING


@dataclass
class SGDConfig(OptimizerConfig):
    name: OptimizerName = OptimizerName.sgd
    lr: float = 0.05
    momentum: float = 0.9
    nesterov: bool = True


@dataclass
class AdamConfig(OptimizerConfig):
    name: OptimizerName = OptimizerName.adam
    lr: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999


@dataclass
class AdamWConfig(AdamConfig):
    name: OptimizerName = OptimizerName.adamw
    lr: float = 0.01


@dataclass
class SchedulerConfig:
    name: SchedulerName = SchedulerName.none
    warmup: float = 0.0  # fraction of all steps spent warming up (onecycle: its pct_start)


@dataclass
class RegularizationConfig:
    weight_decay: float = 0.0
    noise_std: float = 0.0  # Gaussian input noise on training batches, in pixel units (0..1)
    label_smoothing: float = 0.0
    # Mirror a random half of each training batch (augmentation). conf/config.yaml turns it on
    # for datasets whose classes survive a mirror (fashion, cifar10), off for digits and letters.
    hflip: bool = False


@dataclass
class TensorBoardConfig:
    """`logger=tensorboard`: event files in the run folder (scalars per epoch, HParams)."""


@dataclass
class MLflowConfig:
    """`logger=mlflow`: one MLflow run per job, nested under one parent run per sweep."""

    # null: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db in the folder run.py starts in
    tracking_uri: str | None = None
    experiment_name: str | None = None  # null: the sweep's folder (or the run's), e.g. multirun/x
    log_checkpoints: bool = False  # also upload checkpoints/last.pt and best.pt as artifacts


@dataclass
class LoggerConfig:
    """Trackers a run also writes to (none by default); the run folder stays the source."""

    tensorboard: TensorBoardConfig | None = None
    mlflow: MLflowConfig | None = None


@dataclass
class PredictConfig:
    n: int = 5  # test images that mode=predict shows


@dataclass
class RunConfig:
    # A name for a set of overrides that belong together (a study's arm, e.g. from
    # conf/lenet_variant/); first here so that reports group by it before the keys it sets.
    variant: str | None = None
    model: Any = MISSING  # a ModelConfig subclass, chosen by the model group
    dataset: DatasetConfig = MISSING
    optimizer: Any = MISSING  # an OptimizerConfig subclass
    scheduler: SchedulerConfig = MISSING
    regularization: RegularizationConfig = MISSING
    # Images are padded or resized to input_size x input_size. null: the model's native size
    # (as its module registers it, e.g. 32 for the 1998 LeNet-5), else the dataset's own.
    input_size: int | None = None
    resize: Resize | None = None  # null: pad when the border is whole pixels, else resize
    seed: int = 0
    epochs: int = 5
    batch_size: int = 256
    eval_batch_size: int = 1024
    device: str = field(default="auto", metadata=RUNTIME)  # auto (CUDA when present) | cpu | cuda:N
    # torch intra-op threads; 0 keeps torch's default (one per core), or one per parallel job
    threads: int = field(default=0, metadata=RUNTIME)
    compile: bool = False  # torch.compile the model (pays off on GPUs; see benchmarks/)
    amp: bool = False  # bfloat16 mixed precision (autocast) for training and evaluation
    # Test-time augmentation: val and test score each image and its mirror image (the mean of
    # the two softmaxes). Pays off only with regularization.hflip=true; on by default where
    # hflip is. mode=eval and mode=predict use the checkpoint's own setting.
    tta: bool = False
    mode: Mode = field(default=Mode.train, metadata=RUNTIME)
    ckpt: str | None = field(default=None, metadata=RUNTIME)  # for mode=eval / mode=predict
    predict: PredictConfig = field(default_factory=PredictConfig, metadata=RUNTIME)
    figures: bool = field(default=True, metadata=RUNTIME)
    logger: LoggerConfig = field(default_factory=LoggerConfig, metadata=RUNTIME)
    # What the run returns to a search (sweeplab's Optuna sweeper): one of OBJECTIVES, or a
    # list of them for a multi-objective search (hydra.sweeper.direction then lists as many).
    objective: Any = field(default="val_accuracy", metadata=RUNTIME)
    # List what the command would run, resume or skip, and run nothing (sweeps: every job).
    dry_run: bool = field(default=False, metadata=RUNTIME)
    progress: bool = field(default=True, metadata=RUNTIME)  # tqdm bars (off when not a terminal)
    # What a rerun does with runs other code or data made: stop, rerun or keep (class Stale);
    # a plain string, so that a wrong value is sweeplab's one line, not Hydra's traceback.
    stale: str = field(default=Stale.stop.value, metadata=RUNTIME)


OPTIMIZERS: dict[str, type[OptimizerConfig]] = {
    "sgd": SGDConfig,
    "adam": AdamConfig,
    "adamw": AdamWConfig,
}
# Config groups that name a study or a tracker rather than a value; left out of job folder
# names (the tracker's keys are RUNTIME ones too).
STUDY_GROUPS = ("experiment", "hparams_search", "logger")
MAX_DIRNAME_BYTES = 200  # file systems allow 255 bytes per name; leave room for Hydra's own


def job_dirname(overrides: str) -> str:
    """A job folder's name: its overrides (Hydra's override_dirname) when they fit in a folder
    name, else their start and a stable hash of all of them (they stay in .hydra/)."""
    if len(overrides.encode()) <= MAX_DIRNAME_BYTES:
        return overrides
    digest = hashlib.sha256(overrides.encode()).hexdigest()[:16]
    start = overrides.encode()[: MAX_DIRNAME_BYTES - 18].decode(errors="ignore")
    return f"{start}.{digest}"


def search_dirname(number: int, confirms: str | None) -> str:
    """A search's job folder: `trial-007` (sorting by trial; its overrides are in .hydra/), or
    `confirm-021-of-trial-007` for a confirmation run of trial 7."""
    if confirms in (None, ""):
        return f"trial-{int(number):03d}"
    return f"confirm-{int(number):03d}-of-trial-{int(str(confirms)):03d}"


# conf/config.yaml names job folders `${sweeplab.job_dirname:...}` (a search's file
# `${sweeplab.search_dirname:...}`), which Hydra resolves in each job's own process (a joblib
# worker, a SLURM node): importing the library registers them.
OmegaConf.register_new_resolver("sweeplab.job_dirname", job_dirname, replace=True)
OmegaConf.register_new_resolver("sweeplab.search_dirname", search_dirname, replace=True)


def chosen_option(group: str) -> str | None:
    """The option of config group `group` this Hydra job composed (`lenet5_bn` for
    `model=lenet5_bn`); None outside a Hydra job (a test calling the library directly)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    return HydraConfig.get().runtime.choices.get(group)


def runtime_keys(schema: type = RunConfig, prefix: str = "") -> tuple[str, ...]:
    """Dotted keys marked RUNTIME in the schema (a marked group counts with all its keys)."""
    keys: list[str] = []
    hints = get_type_hints(schema)
    for item in fields(schema):
        name, kind = f"{prefix}{item.name}", _dataclass_of(hints[item.name])
        if item.metadata.get("runtime"):
            keys += [*_leaf_keys(kind, f"{name}.")] if kind else [name]
        elif kind:
            keys += runtime_keys(kind, f"{name}.")
    return tuple(keys)


def _dataclass_of(hint: Any) -> type | None:
    """The dataclass a field holds (`X` or `X | None`), else None."""
    options = [hint, *getattr(hint, "__args__", ())]
    return next((t for t in options if isinstance(t, type) and is_dataclass(t)), None)


def _leaf_keys(schema: type, prefix: str) -> Iterator[str]:
    """Every dotted key below a dataclass, down to its scalar fields."""
    hints = get_type_hints(schema)
    for item in fields(schema):
        kind = _dataclass_of(hints[item.name])
        if kind and fields(kind):
            yield from _leaf_keys(kind, f"{prefix}{item.name}.")
        else:
            yield f"{prefix}{item.name}"


def known_keys() -> set[str]:
    """Every dotted key some choice of sweeplab's groups has (every model's, optimizer's and
    tracker's fields), for suggesting what a mistyped key meant."""
    keys = set(_leaf_keys(RunConfig, ""))
    for spec in MODELS.values():
        keys |= set(_leaf_keys(spec.schema, "model."))
    for schema in OPTIMIZERS.values():
        keys |= set(_leaf_keys(schema, "optimizer."))
    return keys


def register_configs() -> None:
    """Store the schemas in Hydra's ConfigStore (call once before composing)."""
    cs = ConfigStore.instance()
    cs.store(group="schema", name="run", node=RunConfig)
    for name, spec in MODELS.items():
        cs.store(group="schema/model", name=name, node=spec.schema)
    for name, schema in OPTIMIZERS.items():
        cs.store(group="schema/optimizer", name=name, node=schema)
    cs.store(group="schema/dataset", name="dataset", node=DatasetConfig)
    cs.store(group="schema/scheduler", name="scheduler", node=SchedulerConfig)
    cs.store(group="schema/regularization", name="regularization", node=RegularizationConfig)
    cs.store(group="schema/logger", name="tensorboard", node=TensorBoardConfig)
    cs.store(group="schema/logger", name="mlflow", node=MLflowConfig)
    # conf/config.yaml picks `schema/mirror/<dataset>`: flips and flip TTA follow the dataset
    # entry unless a study or the command line sets them, and --cfg job shows the value.
    for name, spec in DATASETS.items():
        mirror = spec.mirror_invariant
        node = {"tta": mirror, "regularization": {"hflip": mirror}}
        cs.store(group="schema/mirror", name=name, package="_global_", node=node)
    # Job folders are named by their overrides, minus the keys that do not change results.
    exclude = [*STUDY_GROUPS, *runtime_keys()]
    names = {"job": {"config": {"override_dirname": {"exclude_keys": exclude}}}}
    cs.store(group="schema", name="job_names", package="_global_", node={"hydra": names})


def _reject_unknown_keys(node: DictConfig, prefix: str = "") -> None:
    """`+key=value` bypasses struct mode, so compare every typed node with its schema."""
    schema = OmegaConf.get_type(node)
    known = {f.name for f in fields(schema)} if is_dataclass(schema) else None
    for key in node:
        name = f"{prefix}{key}"
        if known is not None and key not in known:
            meant = closest_key(name, [f"{prefix}{k}" for k in known])
            hint = f"did you mean {meant}? " if meant else ""
            raise SweeplabError(
                f"invalid config: unknown key {name!r}: {hint}(known keys here: {sorted(known)})"
            )
        child = node[key]
        if isinstance(child, DictConfig):
            _reject_unknown_keys(child, f"{name}.")


def check_objective(objective: Any) -> None:
    """One line for an objective a run cannot report, with the one most likely meant."""
    names = objective_names(objective)
    unknown = [name for name in names if name not in OBJECTIVES]
    meant = closest_key(unknown[0], OBJECTIVES) if unknown else None
    hint = f"did you mean {meant}? " if meant else ""
    require(not unknown and bool(names), "objective", objective,
            f"{hint}use {', '.join(OBJECTIVES)}, or a list of them")  # fmt: skip


def objective_names(objective: Any) -> list[str]:
    """`objective` as a list of names (one for a single-objective search)."""
    if isinstance(objective, list | tuple) or OmegaConf.is_list(objective):
        return [str(name) for name in objective]
    return [str(objective)]


def check_config(cfg: DictConfig) -> RunConfig:
    """Check value ranges and return the config as dataclass objects; raise on the first bad one."""
    _reject_unknown_keys(cfg)
    run: RunConfig = OmegaConf.to_object(cfg)  # type: ignore[assignment]
    require(run.epochs >= 1, "epochs", run.epochs, "must be at least 1")
    require(run.batch_size >= 1, "batch_size", run.batch_size, "must be at least 1")
    require(run.eval_batch_size >= 1, "eval_batch_size", run.eval_batch_size, "must be >= 1")
    require(run.threads >= 0, "threads", run.threads, "must be >= 0 (0 = torch's default)")
    require(run.stale in list(Stale), "stale", run.stale, STALE_CHOICES)
    require(run.predict.n >= 1, "predict.n", run.predict.n, "must be at least 1")
    check_objective(run.objective)

    assert isinstance(run.model, ModelConfig)
    model = model_spec(run.model.name)
    run.model.check()

    opt = run.optimizer
    require(math.isfinite(opt.lr) and opt.lr > 0, "optimizer.lr", opt.lr, "must be > 0")
    warmup = run.scheduler.warmup
    require(0 <= warmup < 1, "scheduler.warmup", warmup, "must be in [0, 1)")

    reg = run.regularization
    require(reg.weight_decay >= 0, "regularization.weight_decay", reg.weight_decay, "must be >= 0")
    require(reg.noise_std >= 0, "regularization.noise_std", reg.noise_std, "must be >= 0")
    require(
        0 <= reg.label_smoothing < 1,
        "regularization.label_smoothing",
        reg.label_smoothing,
        "must be in [0, 1)",
    )

    data = run.dataset
    spec = dataset_spec(data.name)
    image = spec.image_size
    mirrored = [k for k, on in (("regularization.hflip", reg.hflip), ("tta", run.tta)) if on]
    if mirrored and not spec.mirror_invariant and run.mode == Mode.train:
        log.warning(
            "%s=true on %s, whose classes do not survive a mirror (a mirrored 2 is not a 2): "
            "expect lower accuracy; set them to false",
            "=true and ".join(mirrored),
            data.name,
        )
    require(data.val_size >= 1, "dataset.val_size", data.val_size, "must be at least 1")
    if data.subset is not None:
        require(data.subset >= 1, "dataset.subset", data.subset, "must be >= 1 or null")

    if run.input_size is None:
        run.input_size = model.native_size or image
    require(run.input_size >= 8, "input_size", run.input_size, "must be at least 8")
    border = run.input_size - image
    if run.resize is None:
        run.resize = Resize.pad if border >= 0 and border % 2 == 0 else Resize.resize
    if run.resize == Resize.pad:
        require(
            border >= 0 and border % 2 == 0,
            "input_size",
            run.input_size,
            f"padding centres the {image}x{image} images, so the size must be {image} + an even "
            "number; add resize=resize for other sizes",
        )

    if run.mode in (Mode.eval, Mode.predict):
        require(
            bool(run.ckpt),
            "ckpt",
            run.ckpt,
            f"mode={run.mode.value} needs a checkpoint: "
            "add ckpt=outputs/<date>/<time>/checkpoints/best.pt",
        )
    return run


def as_container(run: RunConfig) -> dict[str, Any]:
    """The checked config as plain values (enums as strings): what checkpoints record."""
    container = OmegaConf.to_container(OmegaConf.structured(run), enum_to_str=True)
    assert isinstance(container, dict)
    return container


def config_hash(run: RunConfig) -> str:
    """A short hash of everything in the checked config that can change a run's numbers."""
    container = as_container(run)
    # Trackers came after the hash: dropping their whole node keeps every earlier hash.
    container.pop("logger")
    for key in runtime_keys():
        *parents, leaf = key.split(".")
        node = container
        for parent in parents:
            node = node.get(parent) or {}
        node.pop(leaf, None)
    text = json.dumps(container, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
