"""The model zoo. Every other module of this package registers its models on import (see
registry.py), so a new model is one module here plus its `conf/model/<name>.yaml`."""

import importlib
import pkgutil

from sweeplab.models.registry import (
    MODELS,
    SOFTMAX_WARNING,
    InputSizeError,
    ModelConfig,
    ModelSpec,
    build_model,
    count_parameters,
    model_spec,
    register_model,
)

__all__ = [
    "MODELS",
    "SOFTMAX_WARNING",
    "InputSizeError",
    "ModelConfig",
    "ModelSpec",
    "build_model",
    "count_parameters",
    "model_spec",
    "register_model",
]

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
