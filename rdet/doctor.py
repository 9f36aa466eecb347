"""``rdet doctor``: what a bug report needs, in one screen.

Versions (rdet, Python, torch and its CUDA, numpy, OpenCV, ONNX, ONNX Runtime and its providers, gradio, TensorRT,
safetensors), whether the compiled rotated-box ops serve CPU and CUDA tensors and where they come from (the
installed wheel, the per-user JIT cache, built just now, or the pure-PyTorch fallback and why), the build tools
found (C++ compiler, ninja, nvcc), the cache folder (``RDET_HOME``) and the CUDA device.

Nothing heavy is imported at module level; the report itself imports torch and resolves the ops as the first op
call would (it may compile them once, and says so). The command is :mod:`rdet.commands.doctor`.
"""

from __future__ import annotations

import os
import platform
import shutil
import sys
from importlib import metadata

SOURCES = {
    "installed": "built at install time",
    "jit-cache": "JIT cache",
    "jit-built": "JIT, compiled just now",
    "disabled": "disabled",
    "fallback": "pure-PyTorch fallback",
}


def _version(*dists: str) -> str:
    """The installed version of the first of ``dists`` found (read from metadata: nothing is imported)."""
    for dist in dists:
        try:
            v = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
        return v if dist == dists[0] else f"{v} ({dist})"
    return "not installed"


def _ort_providers() -> str:
    try:
        import onnxruntime as ort
    except ImportError:
        return "-"
    except Exception as e:  # noqa: BLE001 - a broken install is exactly what a bug report must show
        return f"import failed: {e}"
    return ", ".join(ort.get_available_providers())


def _cuda_device(torch) -> str:
    if torch.version.cuda is None:
        return "none (this torch is built without CUDA)"
    try:
        if not torch.cuda.is_available():
            return "none found by torch (driver? CUDA_VISIBLE_DEVICES?)"
        rows = []
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            rows.append(f"cuda:{i} {p.name}, sm_{p.major}{p.minor}, {p.total_memory / 2**30:.1f} GiB")
        return "; ".join(rows)
    except Exception as e:  # noqa: BLE001 - reported, not raised
        return f"error: {e}"


def report(rebuild: bool = False) -> list[tuple[str, str]]:
    """The rows of the report: ``(label, value)``."""
    import torch

    import rdet
    from rdet.ops import _build

    if rebuild:
        print(f"rdet doctor: deleting cached builds in {_build.clear_cache()}", file=sys.stderr)
    ext = _build.info()
    if ext.module is None:
        cpu = cuda = f"no ({SOURCES[ext.source]}: {ext.reason})"
    else:
        where = f"{SOURCES[ext.source]}: {ext.path}"
        cpu = f"yes ({where})"
        if ext.cuda:
            cuda = f"yes ({where})"
        elif torch.version.cuda is None:
            cuda = "no (this torch has no CUDA)"
        else:
            cuda = f"no ({ext.reason or 'built without CUDA (no nvcc when it was compiled)'})"
    cxx = os.environ.get("CXX") or "c++"
    tools = ", ".join(
        f"{name} {shutil.which(exe) or 'not found'}"
        for name, exe in (("C++", cxx), ("ninja", "ninja"), ("nvcc", "nvcc"))
    )
    cuda_build = torch.version.cuda or "none"
    cudnn = torch.backends.cudnn.version() if torch.version.cuda else None
    return [
        ("rdet", f"{rdet.__version__} ({os.path.dirname(rdet.__file__)})"),
        ("python", f"{platform.python_version()} ({sys.executable})"),
        ("platform", platform.platform()),
        ("torch", f"{torch.__version__} (CUDA {cuda_build}{f', cuDNN {cudnn}' if cudnn else ''})"),
        ("numpy", _version("numpy")),
        ("opencv", _version("opencv-python-headless")),
        ("onnx", _version("onnx")),
        ("onnxruntime", _version("onnxruntime", "onnxruntime-gpu")),
        ("ORT providers", _ort_providers()),
        ("ORT extensions", _version("onnxruntime-extensions")),
        ("gradio", _version("gradio")),
        ("tensorrt", _version("tensorrt", "tensorrt-cu12", "tensorrt-cu11")),
        ("safetensors", _version("safetensors")),
        ("compiled CPU ops", cpu),
        ("compiled CUDA ops", cuda),
        ("build tools", tools),
        ("ops cache", f"{_build.cache_root()} (RDET_HOME={os.environ.get('RDET_HOME', 'unset')})"),
        ("CUDA device", _cuda_device(torch)),
    ]
