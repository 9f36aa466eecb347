"""Geometry inputs (issue 18.5): negative sides are an error, sub-epsilon boxes are empty, identically in the
compiled kernels and the pure-PyTorch reference; GWD stays finite for huge centre offsets."""

from __future__ import annotations

import pytest
import torch

from rdet import ops
from rdet.losses import gwd_loss, kld_loss
from rdet.ops import _reference

PATHS = ["reference"] + (["compiled"] if ops.has_compiled() else [])


def run(path, fn, *args):
    if path == "reference":
        with ops.reference_only():
            return fn(*args)
    return fn(*args)


@pytest.mark.parametrize("path", PATHS)
def test_negative_sides_are_an_error(path):
    good = torch.tensor([[0.0, 0.0, 10.0, 10.0, 0.0]], dtype=torch.float64)
    bad = torch.tensor([[0.0, 0.0, -1e5, 10.0, 0.0]], dtype=torch.float64)  # gave IoU -5e10 before
    with pytest.raises(ValueError, match=r"boxes2 has a negative width or height \(row 0"):
        run(path, ops.box_iou_rotated, good, bad)
    with pytest.raises(ValueError, match="boxes1 has a negative width or height"):
        run(path, ops.box_iou_rotated, bad, good, "iou", True)
    with pytest.raises(ValueError, match="boxes has a negative width or height"):
        run(path, ops.nms_rotated, torch.cat([good, bad]), torch.tensor([0.9, 0.8], dtype=torch.float64), 0.5)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sub_epsilon_boxes_are_empty(path, dtype):
    tiny = [1e-30, 1e-12, 1e-7, 1e-6, 0.0]
    a = torch.tensor([[5.0, 5.0, s, s, 0.3] for s in tiny] + [[5.0, 5.0, 1e-30, 10.0, 0.0]], dtype=dtype)
    b = torch.tensor([[5.0, 5.0, 10.0, 10.0, 0.0], [5.0 + 1e-31, 5.0, 1e-30, 1e-30, 1.2]], dtype=dtype)
    ab, ba = run(path, ops.box_iou_rotated, a, b), run(path, ops.box_iou_rotated, b, a)
    assert (ab == 0).all() and (ba == 0).all()  # exact answer 0 (asymmetric, up to 1.0 before)
    assert (run(path, ops.box_iou_rotated, a, a, "iou", True) == 0).all()
    # a box just above the threshold is an ordinary box: IoU with itself is 1
    s = 2e-6 if dtype == torch.float64 else 1e-2
    c = torch.tensor([[5.0, 5.0, s, s, 0.0]], dtype=dtype)
    assert run(path, ops.box_iou_rotated, c, c).item() == pytest.approx(1.0, abs=1e-6)
    # NMS: empty boxes neither suppress nor are suppressed
    boxes = torch.cat([a[:2], torch.tensor([[5.0, 5.0, 10.0, 10.0, 0.0]], dtype=dtype)])
    keep = run(path, ops.nms_rotated, boxes, torch.tensor([0.9, 0.8, 0.7], dtype=dtype), 0.1)
    assert sorted(keep.tolist()) == [0, 1, 2]


def test_compiled_equals_reference_on_degenerate_boxes():
    if not ops.has_compiled():
        pytest.skip("rdet._C not built")
    g = torch.Generator().manual_seed(0)
    n = 300
    sides = 10 ** (torch.rand(n, 2, generator=g, dtype=torch.float64) * 10 - 8)  # 1e-8 .. 1e2 px
    boxes = torch.cat(
        [
            torch.rand(n, 2, generator=g, dtype=torch.float64) * 5,
            sides,
            torch.rand(n, 1, generator=g, dtype=torch.float64) * 6 - 3,
        ],
        1,
    )
    want = run("reference", ops.box_iou_rotated, boxes, boxes)
    got = ops.box_iou_rotated(boxes, boxes)
    torch.testing.assert_close(got, want, atol=1e-9, rtol=1e-6)
    assert ((want >= 0) & (want <= 1)).all()
    torch.testing.assert_close(want, want.T, atol=1e-9, rtol=1e-6)
    assert _reference.MIN_SIDE == 1e-6


def test_gwd_finite_for_huge_offsets():
    t = torch.tensor([[0.0, 0.0, 10.0, 5.0, 0.1]] * 3)
    p = torch.tensor([[1e20, 0.0, 10.0, 5.0, 0.1], [0.0, -3e38, 10.0, 5.0, 0.1], [1e15, 1e15, 1.0, 1.0, 0.0]])
    for loss in (
        gwd_loss(p, t),
        gwd_loss(p, t, "sqrt", normalize=False),
        gwd_loss(p, t, stable=False, normalize=False),
        kld_loss(p, t),
    ):
        assert torch.isfinite(loss).all(), loss
    # the cap changes nothing for ordinary offsets
    q = torch.tensor([[30.0, -40.0, 10.0, 5.0, 0.1]])
    assert gwd_loss(q, t[:1], "none", tau=0.0, normalize=False).item() == pytest.approx(50.0, rel=1e-5)
