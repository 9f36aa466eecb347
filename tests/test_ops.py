"""Tests of rdet.ops: exact rotated IoU / quad IoU / greedy NMS, on every available backend."""

from __future__ import annotations

import math

import numpy as np
import pytest
import shapely
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rdet import ops
from rdet.ops import _reference

BACKENDS = ["reference", "compiled"]
PI = math.pi


@pytest.fixture(params=BACKENDS)
def backend(request):
    """Run the test with the pure-torch path and, when built, the compiled rdet._C path."""
    if request.param == "compiled":
        if not ops.has_compiled():
            pytest.skip("rdet._C is not built")
        yield "compiled"
    else:
        with ops.reference_only():
            yield "reference"


def t64(rows) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float64)


def shapely_iou(b1: torch.Tensor, b2: torch.Tensor) -> np.ndarray:
    """Aligned IoU of rotated boxes by shapely (the independent oracle).

    GEOS's floating-point overlay can fail on nearly collinear edges (a box and its flush half give
    an empty intersection), so the oracle snaps to a 1e-9 grid, exact well within our 1e-5 tolerance.
    """
    p1 = shapely.polygons((_reference.box_corners(b1) + b1[:, None, :2]).numpy())
    p2 = shapely.polygons((_reference.box_corners(b2) + b2[:, None, :2]).numpy())
    inter = shapely.area(shapely.intersection(p1, p2, grid_size=1e-9))
    return inter / (shapely.area(p1) + shapely.area(p2) - inter)


def shapely_poly_iou(q1: np.ndarray, q2: np.ndarray) -> np.ndarray:
    p1, p2 = shapely.polygons(q1.reshape(-1, 4, 2)), shapely.polygons(q2.reshape(-1, 4, 2))
    inter = shapely.area(shapely.intersection(p1, p2, grid_size=1e-9))
    return inter / (shapely.area(p1) + shapely.area(p2) - inter)


def dota_like(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Clustered detections: jittered duplicates around objects plus clutter (distinct scores)."""
    g = torch.Generator().manual_seed(seed)
    n_obj = max(1, n // 8)
    w = torch.exp(torch.empty(n_obj, dtype=torch.float64).uniform_(math.log(8), math.log(300), generator=g))
    h = w / torch.exp(torch.empty(n_obj, dtype=torch.float64).uniform_(0, math.log(10), generator=g))
    xy = torch.rand(n_obj, 2, dtype=torch.float64, generator=g) * 1024
    a = (torch.rand(n_obj, dtype=torch.float64, generator=g) - 0.5) * PI
    obj = torch.cat([xy, w[:, None], h[:, None], a[:, None]], 1)
    boxes = obj[torch.randint(0, n_obj, (n,), generator=g)].clone()
    size = (boxes[:, 2] * boxes[:, 3]).sqrt()
    boxes[:, :2] += torch.randn(n, 2, dtype=torch.float64, generator=g) * 0.15 * size[:, None]
    boxes[:, 2:4] *= torch.exp(torch.randn(n, 2, dtype=torch.float64, generator=g) * 0.15)
    boxes[:, 4] += torch.randn(n, dtype=torch.float64, generator=g) * 0.15
    clutter = torch.rand(n, dtype=torch.float64, generator=g) < 0.2
    boxes[clutter, :2] = torch.rand(int(clutter.sum()), 2, dtype=torch.float64, generator=g) * 1024
    return boxes, torch.rand(n, dtype=torch.float64, generator=g)


def degenerate_pairs(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """12k box pairs: random overlaps plus the degenerate families named in the issue."""
    g = torch.Generator().manual_seed(seed)

    def rand(n, lo=0.0, hi=1.0):
        return torch.rand(n, dtype=torch.float64, generator=g) * (hi - lo) + lo

    def boxes(n, wh_hi=50.0):
        return torch.stack(
            [rand(n, -100, 100), rand(n, -100, 100), rand(n, 0.5, wh_hi), rand(n, 0.5, wh_hi), rand(n, -PI, PI)], 1
        )

    families = []
    # random pairs near each other
    a = boxes(4000)
    b = boxes(4000)
    b[:, :2] = a[:, :2] + torch.randn(4000, 2, dtype=torch.float64, generator=g) * 15
    families.append((a, b))
    # 1000:1 aspect (both), at random angles, crossing or parallel
    a = boxes(1000)
    a[:, 3] = a[:, 2] / 1000
    b = a.clone()
    b[:, 4] += torch.where(rand(1000) < 0.5, rand(1000, -0.01, 0.01), rand(1000, -PI, PI))
    b[:, :2] += torch.randn(1000, 2, dtype=torch.float64, generator=g) * 0.01
    families.append((a, b))
    # identical boxes
    a = boxes(1000)
    families.append((a, a.clone()))
    # one inside the other (shrunk, shifted inside, same angle) and concentric rotated
    a = boxes(1000)
    b = a.clone()
    b[:, 2:4] *= rand(1000, 0.1, 0.9)[:, None]
    families.append((a, b))
    b = a.clone()
    b[:, 2:4] *= 0.3
    b[:, 4] = rand(1000, -PI, PI)
    families.append((a, b))
    # shared edges: neighbours along u (outside) and inner boxes flush with one side
    a = boxes(1000)
    b = a.clone()
    c, s = torch.cos(a[:, 4]), torch.sin(a[:, 4])
    shift = (a[:, 2] / 2 + b[:, 2] / 2)[:, None] * torch.stack([c, s], 1)
    b[:, :2] += shift
    families.append((a, b))
    b = a.clone()
    b[:, 2] = a[:, 2] / 2
    b[:, :2] += (a[:, 2] / 4)[:, None] * torch.stack([c, s], 1)
    families.append((a, b))
    # angles exactly +-pi/2 and 0, against random boxes
    a = boxes(2000)
    a[:, 4] = torch.tensor([PI / 2, -PI / 2, 0.0, PI], dtype=torch.float64)[torch.randint(0, 4, (2000,), generator=g)]
    b = boxes(2000)
    b[:, :2] = a[:, :2] + torch.randn(2000, 2, dtype=torch.float64, generator=g) * 10
    b[:1000, 4] = -a[:1000, 4]
    families.append((a, b))
    return torch.cat([f[0] for f in families]), torch.cat([f[1] for f in families])


# ---------------------------------------------------------------------------------- known answers
def test_known_answers(backend):
    b1 = t64([[0, 0, 1, 1, 0], [0, 0, 2, 2, 0], [0, 0, 2, 2, 0], [0, 0, 4, 2, PI / 2], [0, 0, 1, 1, 0]])
    b2 = t64([[0.5, 0, 1, 1, 0], [0, 0, 2, 2, PI / 4], [0, 0, 4, 4, 0], [0, 0, 2, 4, 0], [3, 0, 1, 1, 0.3]])
    iou = ops.box_iou_rotated(b1, b2, aligned=True)
    # half-overlapping unit squares: 0.5 / 1.5; a square and itself turned 45 deg: the octagon
    # 8 (sqrt2 - 1) over 8 - 8 (sqrt2 - 1) = 1 / sqrt2; 2x2 inside 4x4: 4 / 16; w, h swapped with a
    # quarter turn is the same box; far apart: 0.
    expected = t64([1 / 3, 1 / math.sqrt(2), 0.25, 1.0, 0.0])
    torch.testing.assert_close(iou, expected, atol=1e-12, rtol=0)
    iof = ops.box_iou_rotated(b1[2:3], b2[2:3], mode="iof")
    assert iof.shape == (1, 1) and iof.item() == pytest.approx(1.0, abs=1e-12)  # inter / area(boxes1)
    assert ops.box_iou_rotated(b2[2:3], b1[2:3], mode="iof").item() == pytest.approx(0.25, abs=1e-12)


def test_angle_direction_is_clockwise_on_screen(backend):
    # A 4x1 box at +30 deg (y down: its +x end goes down-right) overlaps a 1x1 box at (1.3, 0.75)
    # (down-right of centre) and misses one at (1.3, -0.75).
    b = t64([[0, 0, 4, 1, PI / 6]])
    other = t64([[1.3, 0.75, 0.5, 0.5, 0], [1.3, -0.75, 0.5, 0.5, 0]])
    iou = ops.box_iou_rotated(b, other)[0]
    assert iou[0] > 0.05 and iou[1] == 0


def test_poly_iou_known_answers(backend):
    dart = t64([[0, 0, 4, 0, 1, 1, 0, 4]])  # non-convex (reflex vertex (1, 1)), area 4
    square = t64([[0, 0, 1, 0, 1, 1, 0, 1]])  # inside the dart
    assert ops.poly_iou(square, dart).item() == pytest.approx(0.25, abs=1e-12)
    assert ops.poly_iou(square, dart, mode="iof").item() == pytest.approx(1.0, abs=1e-12)
    # Reversed vertex order and the other argument order do not matter.
    rev = dart.reshape(1, 4, 2).flip(1).reshape(1, 8)
    assert ops.poly_iou(rev, square).item() == pytest.approx(0.25, abs=1e-12)


# ------------------------------------------------------------------------------- versus shapely
@pytest.fixture(scope="module")
def families():
    b1, b2 = degenerate_pairs()
    return b1, b2, shapely_iou(b1, b2)


def test_box_iou_vs_shapely_degenerate_families(backend, families):
    b1, b2, ref = families
    assert b1.shape[0] >= 10_000
    ours = ops.box_iou_rotated(b1, b2, aligned=True).numpy()
    np.testing.assert_allclose(ours, ref, atol=1e-5, rtol=0)
    # Non-aligned on a slice matches the aligned diagonal.
    m = ops.box_iou_rotated(b1[:300], b2[:300])
    np.testing.assert_allclose(torch.diagonal(m).numpy(), ours[:300], atol=1e-12, rtol=0)


def test_zero_width_boxes_have_zero_iou(backend):
    a = t64([[0, 0, 0, 5, 0.3], [0, 0, 5, 0, 0.3], [1, 1, 0, 0, 0]])
    b = t64([[0, 0, 3, 3, 0.1], [0, 0, 5, 0, 0.3], [1, 1, 2, 2, 0]])
    iou = ops.box_iou_rotated(a, b, aligned=True)
    assert torch.all(iou.abs() < 1e-12)  # zero area: no intersection, and 0/0 is defined as 0
    assert torch.all(ops.box_iou_rotated(a, b, aligned=True, mode="iof") == 0)


box_st = st.tuples(
    st.floats(-50, 50),
    st.floats(-50, 50),
    st.floats(0.0, 40),
    st.floats(0.0, 40),
    st.one_of(st.floats(-PI, PI), st.sampled_from([PI / 2, -PI / 2, 0.0, PI / 4])),
)
pair_st = st.tuples(box_st, st.tuples(st.floats(-20, 20), st.floats(-20, 20)), box_st)


@settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.large_base_example],
)
@given(st.lists(pair_st, min_size=25, max_size=25))
def test_box_iou_vs_shapely_hypothesis(pairs):
    # 120 examples x 25 pairs (plus the 12k seeded pairs above); the second box is placed near the
    # first so most pairs overlap.
    b1 = t64([p[0] for p in pairs])
    b2 = t64([p[2] for p in pairs])
    b2[:, :2] = b1[:, :2] + t64([p[1] for p in pairs])
    ok = (b1[:, 2] * b1[:, 3] > 1e-6) & (b2[:, 2] * b2[:, 3] > 1e-6)  # shapely cannot take 0-area polygons
    ref = shapely_iou(b1[ok], b2[ok])
    for use_ref in [False, True] if ops.has_compiled() else [True]:
        if use_ref:
            with ops.reference_only():
                ours = ops.box_iou_rotated(b1, b2, aligned=True)
        else:
            ours = ops.box_iou_rotated(b1, b2, aligned=True)
        np.testing.assert_allclose(ours[ok].numpy(), ref, atol=1e-5, rtol=0)
        assert torch.all((ours >= 0) & (ours <= 1))


def test_poly_iou_vs_shapely(backend):
    g = np.random.default_rng(3)
    n = 3000

    # One vertex per quadrant around a centre, angular gaps < pi: star-shaped, hence simple; random
    # radii make ~half of them non-convex. Both orientations.
    def quads(centre):
        ang = np.arange(4) * PI / 2 + g.uniform(-0.6, 0.6, (n, 4))
        rad = np.exp(g.uniform(math.log(0.5), math.log(20), (n, 4)))
        return centre + np.stack([rad * np.cos(ang), rad * np.sin(ang)], -1)

    centre = g.uniform(-10, 10, (n, 1, 2))
    q1 = quads(centre)
    q2 = quads(centre + g.normal(0, 5, (n, 1, 2)))
    q2[::2] = q2[::2, ::-1]
    q1, q2 = q1.reshape(n, 8), q2.reshape(n, 8)
    ours = ops.poly_iou(torch.from_numpy(q1), torch.from_numpy(q2), aligned=True).numpy()
    valid = shapely.is_valid(shapely.polygons(q1.reshape(-1, 4, 2))) & shapely.is_valid(
        shapely.polygons(q2.reshape(-1, 4, 2))
    )
    assert valid.all()
    nonconvex = (
        np.abs(
            shapely.area(shapely.convex_hull(shapely.polygons(q1.reshape(-1, 4, 2))))
            - shapely.area(shapely.polygons(q1.reshape(-1, 4, 2)))
        )
        > 1e-6
    )
    assert nonconvex.mean() > 0.15  # the test really covers non-convex quads
    np.testing.assert_allclose(ours[valid], shapely_poly_iou(q1[valid], q2[valid]), atol=1e-5, rtol=0)
    # Rectangles as polygons give the box IoU.
    b1, b2 = degenerate_pairs(seed=5)
    b1, b2 = b1[:2000], b2[:2000]
    p1 = (_reference.box_corners(b1) + b1[:, None, :2]).reshape(-1, 8)
    p2 = (_reference.box_corners(b2) + b2[:, None, :2]).reshape(-1, 8)
    torch.testing.assert_close(
        ops.poly_iou(p1, p2, aligned=True), ops.box_iou_rotated(b1, b2, aligned=True), atol=1e-9, rtol=0
    )


# ---------------------------------------------------------------------------------- invariants
def test_iou_invariants(backend):
    boxes, _ = dota_like(200, seed=1)
    iou = ops.box_iou_rotated(boxes, boxes)
    torch.testing.assert_close(iou, iou.T, atol=1e-12, rtol=0)  # symmetric
    torch.testing.assert_close(torch.diagonal(iou), torch.ones(200, dtype=torch.float64), atol=1e-12, rtol=0)
    # Joint translation, rotation about a point, and scaling leave IoU unchanged.
    moved = boxes.clone()
    moved[:, :2] += t64([12345.0, -6789.0])
    torch.testing.assert_close(ops.box_iou_rotated(moved, moved), iou, atol=1e-9, rtol=0)
    th = 0.7
    rot = t64([[math.cos(th), -math.sin(th)], [math.sin(th), math.cos(th)]])
    turned = boxes.clone()
    turned[:, :2] = boxes[:, :2] @ rot.T
    turned[:, 4] += th
    torch.testing.assert_close(ops.box_iou_rotated(turned, turned), iou, atol=1e-9, rtol=0)
    scaled = boxes.clone()
    scaled[:, :4] *= 7.3
    torch.testing.assert_close(ops.box_iou_rotated(scaled, scaled), iou, atol=1e-9, rtol=0)
    # Angles are periodic (pi for a rectangle).
    flipped = boxes.clone()
    flipped[:, 4] += PI
    torch.testing.assert_close(ops.box_iou_rotated(flipped, boxes), iou, atol=1e-9, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_dtypes(backend, dtype):
    boxes, scores = dota_like(200, seed=2)
    boxes[:, :2] += 3000  # far from the origin: centre-relative computation keeps float32 accurate
    x = boxes.to(dtype)
    iou = ops.box_iou_rotated(x, x[:50])
    assert iou.dtype == dtype and iou.shape == (200, 50)
    exact = ops.box_iou_rotated(x.double(), x[:50].double())  # same (rounded) input, float64
    tol = 1e-4 if dtype in (torch.float32, torch.float64) else 1e-2  # output rounding of half types
    torch.testing.assert_close(iou.double(), exact, atol=tol, rtol=0)
    keep = ops.nms_rotated(x, scores.to(dtype), 0.3)
    assert keep.dtype == torch.int64
    polys = (_reference.box_corners(boxes) + boxes[:, None, :2]).reshape(-1, 8).to(dtype)
    assert ops.poly_iou(polys, polys[:5]).dtype == dtype


def test_float32_close_to_float64():
    b1, b2 = degenerate_pairs(seed=7)
    b1[:, :2] += 5000
    b2[:, :2] += 5000
    b1, b2 = b1.float().double(), b2.float().double()  # exactly representable in float32
    exact = ops.box_iou_rotated(b1, b2, aligned=True)
    with ops.reference_only():  # the pure-torch path computes float32 in float32
        f32 = ops.box_iou_rotated(b1.float(), b2.float(), aligned=True)
    torch.testing.assert_close(f32.double(), exact, atol=1e-4, rtol=0)


# ------------------------------------------------------------------------------------------ NMS
def greedy_nms_oracle(boxes: torch.Tensor, scores: torch.Tensor, thr: float) -> list[int]:
    polys = shapely.polygons((_reference.box_corners(boxes) + boxes[:, None, :2]).numpy())
    n = len(polys)
    i, j = np.triu_indices(n, 1)
    inter = shapely.area(shapely.intersection(polys[i], polys[j]))
    area = shapely.area(polys)
    iou = np.zeros((n, n))
    iou[i, j] = iou[j, i] = inter / (area[i] + area[j] - inter)
    order = sorted(range(n), key=lambda k: (-float(scores[k]), k))
    keep, dead = [], np.zeros(n, bool)
    for k in order:
        if not dead[k]:
            keep.append(k)
            dead |= iou[k] > thr
    return keep


@pytest.mark.parametrize("thr", [0.1, 0.5])
def test_nms_matches_shapely_greedy(backend, thr):
    boxes, scores = dota_like(400, seed=3)
    assert ops.nms_rotated(boxes, scores, thr).tolist() == greedy_nms_oracle(boxes, scores, thr)


def test_nms_properties(backend):
    boxes, scores = dota_like(1000, seed=4)
    keep = ops.nms_rotated(boxes, scores, 0.1)
    assert keep.dtype == torch.int64 and 0 < keep.numel() < 1000
    assert torch.all(scores[keep][:-1] >= scores[keep][1:])  # by decreasing score
    # Idempotent: the kept boxes survive a second pass, in the same order.
    again = ops.nms_rotated(boxes[keep], scores[keep], 0.1)
    assert torch.equal(again, torch.arange(keep.numel()))
    # No kept pair overlaps beyond the threshold.
    iou = ops.box_iou_rotated(boxes[keep], boxes[keep])
    assert (iou.triu(1) <= 0.1).all()
    # Permuting the input does not change the kept set (scores are distinct).
    perm = torch.randperm(1000, generator=torch.Generator().manual_seed(0))
    keep_p = ops.nms_rotated(boxes[perm], scores[perm], 0.1)
    assert torch.equal(perm[keep_p], keep)


def test_nms_ties_and_thresholds(backend):
    b = t64([[0, 0, 10, 10, 0], [0, 0, 10, 10, 0], [1, 0, 10, 10, 0], [50, 0, 10, 10, 0]])
    s = t64([0.5, 0.5, 0.5, 0.9])
    assert ops.nms_rotated(b, s, 0.5).tolist() == [3, 0]  # equal scores: lower index first
    assert ops.nms_rotated(b, s, 1.0).tolist() == [3, 0, 1, 2]  # IoU never exceeds 1
    assert ops.nms_rotated(b, s, 0.0).tolist() == [3, 0]  # any overlap suppresses
    assert ops.nms_rotated(b, s, -0.5).tolist() == [3]  # IoU 0 > -0.5: the best box wins all
    # IoU(0, 2) = 90 / 110 = 0.818...; suppression needs IoU strictly above the threshold.
    assert ops.nms_rotated(b[[0, 2]], s[[0, 2]], 90 / 110 + 1e-9).tolist() == [0, 1]


def test_batched_nms(backend):
    boxes, scores = dota_like(800, seed=5)
    idxs = torch.randint(0, 4, (800,), generator=torch.Generator().manual_seed(1))
    keep = ops.batched_nms_rotated(boxes, scores, idxs, 0.2)
    expected = []
    for c in range(4):
        sel = (idxs == c).nonzero().squeeze(1)
        expected += sel[ops.nms_rotated(boxes[sel], scores[sel], 0.2)].tolist()
    assert sorted(keep.tolist()) == sorted(expected)
    assert torch.all(scores[keep][:-1] >= scores[keep][1:])
    # Identical boxes of different classes do not suppress each other.
    b = t64([[0, 0, 10, 10, 0]] * 2)
    assert ops.batched_nms_rotated(b, t64([0.9, 0.8]), torch.tensor([0, 1]), 0.5).tolist() == [0, 1]
    assert ops.batched_nms_rotated(b, t64([0.9, 0.8]), torch.tensor([1, 1]), 0.5).tolist() == [0]
    assert ops.batched_nms_rotated(b, t64([0.9, 0.8]), torch.tensor([0, 1], dtype=torch.int32), -1).tolist() == [0, 1]


@pytest.mark.skipif(not ops.has_compiled(), reason="rdet._C is not built")
def test_compiled_matches_reference():
    boxes, scores = dota_like(2000, seed=6)
    idxs = torch.randint(0, 3, (2000,), generator=torch.Generator().manual_seed(2))
    iou = ops.box_iou_rotated(boxes[:150], boxes[:1000])
    iof = ops.box_iou_rotated(boxes[:150], boxes[:1000], mode="iof")
    keep = ops.nms_rotated(boxes, scores, 0.1)
    bkeep = ops.batched_nms_rotated(boxes, scores, idxs, 0.3)
    polys = (_reference.box_corners(boxes) + boxes[:, None, :2]).reshape(-1, 8)
    piou = ops.poly_iou(polys[:100], polys[:300])
    with ops.reference_only():
        torch.testing.assert_close(iou, ops.box_iou_rotated(boxes[:150], boxes[:1000]), atol=1e-12, rtol=0)
        torch.testing.assert_close(iof, ops.box_iou_rotated(boxes[:150], boxes[:1000], mode="iof"), atol=1e-12, rtol=0)
        assert torch.equal(keep, ops.nms_rotated(boxes, scores, 0.1))
        assert torch.equal(bkeep, ops.batched_nms_rotated(boxes, scores, idxs, 0.3))
        torch.testing.assert_close(piou, ops.poly_iou(polys[:100], polys[:300]), atol=1e-12, rtol=0)


# ---------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: ops.box_iou_rotated(torch.zeros(3, 4), torch.zeros(2, 5)), r"boxes1 .*\[N, 5\].*\[3, 4\]"),
        (lambda: ops.box_iou_rotated(torch.zeros(3, 5), torch.zeros(5)), r"boxes2 .*\[5\]"),
        (lambda: ops.box_iou_rotated(torch.zeros(3, 5, dtype=torch.long), torch.zeros(2, 5)), "boxes1 .*dtype"),
        (lambda: ops.box_iou_rotated(torch.zeros(3, 5), torch.zeros(2, 5), mode="giou"), "mode"),
        (lambda: ops.box_iou_rotated(torch.zeros(3, 5), torch.zeros(2, 5), aligned=True), r"\[3, 5\] and \[2, 5\]"),
        (lambda: ops.box_iou_rotated(torch.zeros(3, 5), torch.zeros(2, 5, device="meta")), "device"),
        (lambda: ops.box_iou_rotated(t64([[0, 0, 1, float("nan"), 0]]), t64([[0, 0, 1, 1, 0]])), "boxes1 .*NaN"),
        (lambda: ops.poly_iou(torch.zeros(3, 5), torch.zeros(2, 8)), r"polys1 .*\[3, 5\]"),
        (lambda: ops.poly_iou(torch.zeros(1, 8), t64([[0, 0, 1, 0, 1, float("inf"), 0, 1]])), "polys2 .*Inf"),
        (lambda: ops.nms_rotated(torch.zeros(3, 5), torch.zeros(4), 0.5), r"scores .*\[4\]"),
        (lambda: ops.nms_rotated(torch.zeros(3, 5), torch.zeros(3), float("nan")), "iou_threshold"),
        (lambda: ops.nms_rotated(t64([[0, 0, 1, 1, float("inf")]]), t64([1.0]), 0.5), "boxes .*NaN or Inf"),
        (lambda: ops.nms_rotated(t64([[0, 0, 1, 1, 0]]), t64([float("nan")]), 0.5), "scores .*NaN"),
        (lambda: ops.batched_nms_rotated(torch.zeros(3, 5), torch.zeros(3), torch.zeros(3), 0.5), "idxs .*integer"),
        (
            lambda: ops.batched_nms_rotated(torch.zeros(3, 5), torch.zeros(3), torch.zeros(2, dtype=torch.long), 0.5),
            r"idxs .*\[2\]",
        ),
    ],
)
def test_bad_input_raises(backend, call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_empty_inputs(backend):
    e = torch.zeros(0, 5, dtype=torch.float32)
    b = torch.rand(3, 5)
    assert ops.box_iou_rotated(e, b).shape == (0, 3) and ops.box_iou_rotated(e, b).dtype == torch.float32
    assert ops.box_iou_rotated(b, e.double()).shape == (3, 0)
    assert ops.box_iou_rotated(b, e.double()).dtype == torch.float64
    assert ops.box_iou_rotated(e, e, aligned=True).shape == (0,)
    assert ops.poly_iou(torch.zeros(0, 8), torch.zeros(2, 8)).shape == (0, 2)
    keep = ops.nms_rotated(e, torch.zeros(0), 0.5)
    assert keep.shape == (0,) and keep.dtype == torch.int64
    assert ops.batched_nms_rotated(e, torch.zeros(0), torch.zeros(0, dtype=torch.long), 0.5).shape == (0,)


# ------------------------------------------------------------------------------------- tracing
class _Detect(torch.nn.Module):
    def forward(self, boxes: torch.Tensor, scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        keep = ops.nms_rotated(boxes, scores, 0.1)
        return keep, ops.box_iou_rotated(boxes, boxes[:4])


def test_ops_trace_with_export_and_compile():
    boxes, scores = dota_like(64, seed=8)
    eager = _Detect()(boxes, scores)
    ep = torch.export.export(_Detect(), (boxes, scores))
    text = str(ep.graph)
    assert "rdet.nms_rotated" in text and "rdet.box_iou_rotated" in text
    out = ep.module()(boxes, scores)
    assert torch.equal(out[0], eager[0]) and torch.equal(out[1], eager[1])
    compiled = torch.compile(_Detect(), backend="aot_eager", fullgraph=True)
    out = compiled(boxes, scores)
    assert torch.equal(out[0], eager[0])
    from torch.fx.experimental.proxy_tensor import make_fx

    gm = make_fx(lambda p, q: ops.poly_iou(p, q, mode="iof"), tracing_mode="fake")(torch.rand(3, 8), torch.rand(2, 8))
    assert "rdet.poly_iou" in str(gm.graph)


# ------------------------------------------------------------------------------------------- GPU
@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
class TestCUDA:
    def test_iou_cuda_matches_cpu(self):
        b1, b2 = degenerate_pairs(seed=9)
        cpu = ops.box_iou_rotated(b1, b2, aligned=True)
        gpu = ops.box_iou_rotated(b1.cuda(), b2.cuda(), aligned=True)
        assert gpu.is_cuda
        torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-9, rtol=0)
        gpu32 = ops.box_iou_rotated(b1.float().cuda(), b2.float().cuda(), aligned=True)
        torch.testing.assert_close(gpu32.cpu().double(), cpu, atol=1e-4, rtol=0)
        boxes, _ = dota_like(700, seed=10)
        torch.testing.assert_close(
            ops.box_iou_rotated(boxes.cuda(), boxes[:300].cuda(), mode="iof").cpu(),
            ops.box_iou_rotated(boxes, boxes[:300], mode="iof"),
            atol=1e-9,
            rtol=0,
        )
        polys = (_reference.box_corners(boxes) + boxes[:, None, :2]).reshape(-1, 8)
        torch.testing.assert_close(
            ops.poly_iou(polys.cuda(), polys[:50].cuda()).cpu(), ops.poly_iou(polys, polys[:50]), atol=1e-9, rtol=0
        )

    def test_nms_cuda_matches_cpu(self):
        for n, seed in [(1, 0), (63, 1), (64, 2), (65, 3), (3000, 4)]:
            boxes, scores = dota_like(n, seed=seed)
            idxs = torch.randint(0, 3, (n,), generator=torch.Generator().manual_seed(seed))
            assert torch.equal(
                ops.nms_rotated(boxes.cuda(), scores.cuda(), 0.1).cpu(), ops.nms_rotated(boxes, scores, 0.1)
            )
            assert torch.equal(
                ops.batched_nms_rotated(boxes.cuda(), scores.cuda(), idxs.cuda(), 0.3).cpu(),
                ops.batched_nms_rotated(boxes, scores, idxs, 0.3),
            )
        b = t64([[0, 0, 10, 10, 0], [0, 0, 10, 10, 0], [50, 0, 10, 10, 0]]).cuda()
        assert ops.nms_rotated(b, t64([0.5, 0.5, 0.9]).cuda(), 0.5).tolist() == [2, 0]
