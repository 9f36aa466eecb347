"""Fuzz target: arrays of every dtype, layout, size and value range through the ONNX ``Runner`` of a tiny export.

The runner must either detect (one result per image, finite boxes, scores in [0, 1], known labels) or refuse with a
clear ``ValueError``; accepting NaN/Inf, values outside 0-255 or float images scaled to 0-1 is silently wrong.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
from hypothesis import strategies as st

from rdet.config import Config
from rdet.models.build import build_model

from .registry import SilentlyWrong, target

_TMP = Path(tempfile.mkdtemp(prefix="rdet_fuzz_runner_"))
atexit.register(shutil.rmtree, _TMP, ignore_errors=True)
SIZE = 64
DTYPES = ("uint8", "int16", "int64", "float16", "float32", "float64", "bool", "complex64")
LAYOUTS = ("nchw", "nhwc", "chw", "hwc", "hw", "nchw-small", "n1hw", "nchw1")
VALUES = ("pixels", "unit", "negative", "above-255", "nan", "inf", "zeros")
_runner = None


def _get_runner():
    """A tiny Rotated RetinaNet exported once (64 px, NMS by the runner, score threshold 0: boxes always out)."""
    global _runner
    if _runner is None:
        from rdet.export import Runner, export_onnx

        c = Config(name="fuzz-runner")
        m = c.model
        m.backbone.depth, m.backbone.weights = 18, None
        m.neck.out_channels = m.head.feat_channels = 16
        m.head.stacked_convs, m.head.num_classes = 1, 2
        c.data.classes = ("plane", "ship")
        torch.manual_seed(0)
        path = export_onnx(build_model(c).eval(), _TMP / "fuzz.onnx", nms="none", imgsz=SIZE, score_threshold=0.0)
        _runner = Runner(path)
    return _runner


def _shape(layout: str, batch: int) -> tuple[int, ...]:
    s = SIZE
    return {
        "nchw": (batch, 3, s, s),
        "nhwc": (batch, s, s, 3),
        "chw": (3, s, s),
        "hwc": (s, s, 3),
        "hw": (s, s),
        "nchw-small": (batch, 3, s // 2, s),
        "n1hw": (batch, 1, s, s),
        "nchw1": (batch, 3, s, s, 1),
    }[layout]


def _array(dtype: str, layout: str, batch: int, values: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = _shape(layout, batch)
    base = {
        "pixels": rng.uniform(0, 255, shape),
        "unit": rng.uniform(0, 1, shape),
        "zeros": np.zeros(shape),
        "negative": rng.uniform(-255, 255, shape),
        "above-255": rng.uniform(0, 1000, shape),
    }.get(values)
    if base is None:  # nan / inf: pixels with one bad value
        base = rng.uniform(0, 255, shape)
        if base.size:
            base.flat[int(rng.integers(base.size))] = np.nan if values == "nan" else np.inf
    if dtype in ("uint8", "int16", "int64", "bool"):
        with np.errstate(invalid="ignore"):
            base = np.nan_to_num(base, nan=0, posinf=255)  # integers cannot hold NaN/Inf
    return base.astype(dtype)


INPUTS = st.tuples(
    st.sampled_from(DTYPES), st.sampled_from(LAYOUTS), st.integers(0, 2), st.sampled_from(VALUES), st.integers(0, 99)
)


@target("runner: ONNX Runner.run inputs (dtype, layout, size, range)", INPUTS)
def runner_inputs(example) -> None:
    dtype, layout, batch, values, seed = example
    x = _array(dtype, layout, batch, values, seed)
    out = _get_runner().run(x)  # a ValueError here is a clear refusal
    images = 1 if layout in ("chw", "hwc") else batch
    finite = not np.issubdtype(x.dtype, np.floating) or bool(np.isfinite(x).all())
    if not finite:
        raise SilentlyWrong(f"{dtype} images with NaN/Inf accepted")
    if x.size and (float(x.min()) < 0 or float(x.max()) > 255):
        raise SilentlyWrong(f"{dtype} images with values {float(x.min())}..{float(x.max())} accepted")
    if np.issubdtype(x.dtype, np.floating) and x.size and 0 < float(x.max()) <= 1:
        raise SilentlyWrong(f"{dtype} images scaled to 0-1 accepted")
    if len(out) != images:
        raise SilentlyWrong(f"{len(out)} results for {images} image(s) of shape {list(x.shape)}")
    for r in out:
        if r["boxes"].shape[1:] != (5,) or not np.isfinite(r["boxes"]).all():
            raise SilentlyWrong(f"boxes {r['boxes'].shape} not finite [K, 5]")
        if len(r["scores"]) and not ((r["scores"] >= 0) & (r["scores"] <= 1)).all():
            raise SilentlyWrong("scores outside [0, 1]")
        if len(r["labels"]) and not set(r["labels"].tolist()) <= {0, 1}:
            raise SilentlyWrong(f"labels {sorted(set(r['labels'].tolist()))} of a 2-class model")
