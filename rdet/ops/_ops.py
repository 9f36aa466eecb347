"""``torch.library`` custom ops ``rdet::box_iou_rotated``, ``rdet::poly_iou``, ``rdet::nms_rotated``.

Registering the geometry as custom ops (with fake implementations) lets ``torch.compile``,
``torch.export`` and ``make_fx`` trace models that call them. The real implementation runs the
compiled extension (``rdet._C``, or the same sources built on first use: :mod:`rdet.ops._build`; for CUDA
tensors only when it was built with CUDA) and otherwise the pure-PyTorch :mod:`rdet.ops._reference`, which works
on any device.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
from torch import Tensor

from rdet.ops import _build, _reference

_MODES = ("iou", "iof")
_force_reference = False


def has_compiled(device: str = "cpu") -> bool:
    """Whether the compiled kernels serve tensors on ``device`` (``'cpu'`` or ``'cuda'``)."""
    ext = _build.extension()  # resolved (and built if needed) on first use
    if ext is None:
        return False
    return device == "cpu" or (device.startswith("cuda") and bool(ext.has_cuda()))


@contextlib.contextmanager
def reference_only() -> Iterator[None]:
    """Within this context the ops run the pure-PyTorch implementation (benchmarks, tests)."""
    global _force_reference
    old, _force_reference = _force_reference, True
    try:
        yield
    finally:
        _force_reference = old


def _use_compiled(t: Tensor) -> bool:
    if _force_reference:
        return False
    if has_compiled(t.device.type):
        return True
    if t.device.type == "cuda" and _build.extension() is not None:  # compiled, but for the CPU only
        _build.warn_cuda_fallback()
    return False


# ----------------------------------------------------------------------------------------- checks
def check_float(t: Tensor, name: str, last: int | None) -> None:
    """Raise ValueError unless ``t`` is a float Tensor of shape ``[N]`` (last None) or ``[N, last]``."""
    if not isinstance(t, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    want = "[N]" if last is None else f"[N, {last}]"
    if (last is None and t.dim() != 1) or (last is not None and (t.dim() != 2 or t.shape[1] != last)):
        raise ValueError(f"{name} must have shape {want}, got {list(t.shape)}")
    if not t.is_floating_point():
        raise ValueError(f"{name} must be a floating point tensor, got dtype {t.dtype}")


def check_same_device(**tensors: Tensor | None) -> None:
    devs = {n: t.device for n, t in tensors.items() if t is not None}
    if len(set(devs.values())) > 1:
        raise ValueError(f"all inputs must be on one device, got {', '.join(f'{n} on {d}' for n, d in devs.items())}")


def check_mode(mode: str) -> None:
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")


def check_finite(t: Tensor, name: str) -> None:
    """NaN/Inf would silently corrupt a keep-set, so they are an error (skipped while tracing)."""
    if t.numel() and not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} contains NaN or Inf values")


def check_sides(t: Tensor, name: str) -> None:
    """Box widths and heights must be >= 0 (a negative side gave negative IoUs such as -5e10). Sides up to
    ``_reference.MIN_SIDE`` are allowed and mean an empty box (IoU 0 with anything)."""
    if t.numel() and not bool((t[:, 2:4] >= 0).all()):
        bad = int((t[:, 2:4] < 0).any(1).nonzero()[0, 0])
        raise ValueError(f"{name} has a negative width or height (row {bad}: {t[bad].tolist()}); sides must be >= 0")


def check_pair(a: Tensor, b: Tensor, names: tuple[str, str], last: int, mode: str, aligned: bool) -> None:
    check_float(a, names[0], last)
    check_float(b, names[1], last)
    check_same_device(**{names[0]: a, names[1]: b})
    check_mode(mode)
    if aligned and a.shape[0] != b.shape[0]:
        raise ValueError(
            f"aligned=True needs {names[0]} and {names[1]} of equal length, got {list(a.shape)} and {list(b.shape)}"
        )


def check_nms(boxes: Tensor, scores: Tensor, iou_threshold: float, idxs: Tensor | None) -> None:
    check_float(boxes, "boxes", 5)
    check_float(scores, "scores", None)
    if scores.shape[0] != boxes.shape[0]:
        raise ValueError(f"scores must have shape [{boxes.shape[0]}] (one per box), got {list(scores.shape)}")
    if idxs is not None:
        if not isinstance(idxs, Tensor) or idxs.dim() != 1 or idxs.shape[0] != boxes.shape[0]:
            got = list(idxs.shape) if isinstance(idxs, Tensor) else type(idxs).__name__
            raise ValueError(f"idxs must have shape [{boxes.shape[0]}] (one per box), got {got}")
        if idxs.is_floating_point() or idxs.is_complex() or idxs.dtype == torch.bool:
            raise ValueError(f"idxs must be an integer tensor, got dtype {idxs.dtype}")
    check_same_device(boxes=boxes, scores=scores, idxs=idxs)
    if not isinstance(iou_threshold, (int, float)) or not math.isfinite(iou_threshold):
        raise ValueError(f"iou_threshold must be a finite float, got {iou_threshold!r}")


def _out_dtype(a: Tensor, b: Tensor) -> torch.dtype:
    return torch.promote_types(a.dtype, b.dtype)


def _iou_shape(a: Tensor, b: Tensor, aligned: bool) -> tuple[int, ...]:
    return (a.shape[0],) if aligned else (a.shape[0], b.shape[0])


# ------------------------------------------------------------------------------------ custom ops
def _pairwise_iou(
    a: Tensor, b: Tensor, names: tuple[str, str], dim: int, mode: str, aligned: bool, compiled, reference
) -> Tensor:
    """The shared body of the IoU ops: validation, empty inputs, compiled kernel or reference, output dtype."""
    check_pair(a, b, names, dim, mode, aligned)
    check_finite(a, names[0])
    check_finite(b, names[1])
    if dim == 5:
        check_sides(a, names[0])
        check_sides(b, names[1])
    out_dtype = _out_dtype(a, b)
    if a.shape[0] == 0 or b.shape[0] == 0:
        return a.new_zeros(_iou_shape(a, b, aligned), dtype=out_dtype)
    if _use_compiled(a):
        dt = _reference.compute_dtype(out_dtype) if a.is_cuda else torch.float64
        out = compiled(a.to(dt).contiguous(), b.to(dt).contiguous(), mode == "iof", aligned)
    else:
        out = reference(a, b, mode, aligned)
    return out.to(out_dtype)


@torch.library.custom_op("rdet::box_iou_rotated", mutates_args=())
def box_iou_rotated_op(boxes1: Tensor, boxes2: Tensor, mode: str, aligned: bool) -> Tensor:
    # lambda: the extension is None when not built, and only the compiled path may touch it
    return _pairwise_iou(
        boxes1,
        boxes2,
        ("boxes1", "boxes2"),
        5,
        mode,
        aligned,
        lambda *x: _build.extension().box_iou_rotated(*x),
        _reference.box_iou_rotated,
    )


@box_iou_rotated_op.register_fake
def _(boxes1: Tensor, boxes2: Tensor, mode: str, aligned: bool) -> Tensor:
    return boxes1.new_empty(_iou_shape(boxes1, boxes2, aligned), dtype=_out_dtype(boxes1, boxes2))


@torch.library.custom_op("rdet::poly_iou", mutates_args=())
def poly_iou_op(polys1: Tensor, polys2: Tensor, mode: str, aligned: bool) -> Tensor:
    return _pairwise_iou(
        polys1,
        polys2,
        ("polys1", "polys2"),
        8,
        mode,
        aligned,
        lambda *x: _build.extension().poly_iou(*x),
        _reference.poly_iou,
    )


@poly_iou_op.register_fake
def _(polys1: Tensor, polys2: Tensor, mode: str, aligned: bool) -> Tensor:
    return polys1.new_empty(_iou_shape(polys1, polys2, aligned), dtype=_out_dtype(polys1, polys2))


@torch.library.custom_op("rdet::nms_rotated", mutates_args=())
def nms_rotated_op(boxes: Tensor, scores: Tensor, iou_threshold: float, idxs: Tensor | None) -> Tensor:
    check_nms(boxes, scores, iou_threshold, idxs)
    check_finite(boxes, "boxes")
    check_finite(scores, "scores")
    check_sides(boxes, "boxes")
    if boxes.shape[0] == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    # A negative threshold suppresses even disjoint pairs, which the kernels' rejection tests skip;
    # the reference answers it directly (first box of each class).
    if _use_compiled(boxes) and iou_threshold >= 0:
        dt = _reference.compute_dtype(boxes.dtype) if boxes.is_cuda else torch.float64
        # Scores are only ordered, so float64 keeps every distinction the input dtype had.
        cls = None if idxs is None else idxs.to(torch.long).contiguous()
        return _build.extension().nms_rotated(
            boxes.to(dt).contiguous(), scores.to(torch.float64).contiguous(), float(iou_threshold), cls
        )
    return _reference.nms_rotated(boxes, scores, float(iou_threshold), idxs)


@nms_rotated_op.register_fake
def _(boxes: Tensor, scores: Tensor, iou_threshold: float, idxs: Tensor | None) -> Tensor:
    k = torch.library.get_ctx().new_dynamic_size()
    return boxes.new_empty((k,), dtype=torch.long)
