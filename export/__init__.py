"""Deployment of rdet detectors: ONNX export (three NMS modes), ONNX Runtime / TensorRT runners, TensorRT build.

Lives beside the ``rdet`` package and uses only its public API; ``import rdet`` never imports onnx or
tensorrt. Entry points (imported on first use)::

    export_onnx(model_or_checkpoint, "model.onnx", nms="onnx" | "plugin" | "none", ...)   # export.onnx_export
    Runner("model.onnx").run(images) -> [{'boxes', 'scores', 'labels'}, ...]               # export.runtime
    build_engine("model.onnx", "model.engine", plugin_lib=..., fp16=...)                  # export.trt_build
    rotated_nms_batched(boxes, scores, NMSParams(...))                                    # export.rotated_nms_op
"""

from __future__ import annotations

import importlib

_LAZY = {
    "export_onnx": "rdet.export.onnx_export",
    "read_metadata": "rdet.export.onnx_export",
    "Runner": "rdet.export.runtime",
    "build_engine": "rdet.export.trt_build",
    "rotated_nms_batched": "rdet.export.rotated_nms_op",
    "NMSParams": "rdet.export.rotated_nms_op",
}

__all__ = list(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'export' has no attribute {name!r}")
