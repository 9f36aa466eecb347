"""rdet: rotated object detection for aerial imagery.

Public API (heavy parts are imported on first use, and ``import rdet`` never imports gradio, onnx or
tensorrt)::

    rdet.train(config_or_path, **overrides)        rdet.distill(...)
    rdet.evaluate(detections, annotations, ...)    rdet.evaluate_task1(results_dir, labels_dir, ...)
    rdet.predict(image_or_path, model_or_path, ...)
    rdet.load_config(path)                         rdet.build_model(config)
    rdet.load_checkpoint(path_or_published_name)   (``rdet zoo`` lists the published models)
    rdet.read_labels(path, format=None, ...)

The box convention is documented once, in :mod:`rdet.boxes`.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {
    "train": "rdet.engine.train",
    "distill": "rdet.engine.distill",
    "evaluate": "rdet.eval.dota",
    "evaluate_task1": "rdet.eval.files",
    "predict": "rdet.inference.predict",
    "load_config": "rdet.config",
    "build_model": "rdet.models.build",
    "load_checkpoint": "rdet.checkpoint",
    "read_labels": "rdet.data.formats",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'rdet' has no attribute {name!r}")
