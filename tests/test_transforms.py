"""Rotated augmentations: polygon path == box path (IoU 1), pixels follow polygons, rules and randomness."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rdet.boxes import obb2poly, poly2obb
from rdet.data import transforms as T
from rdet.ops import box_iou_rotated


def _boxes(n=64, seed=0, size=(300, 200)):
    g = torch.Generator().manual_seed(seed)
    ctr = torch.rand(n, 2, generator=g, dtype=torch.float64) * torch.tensor(size, dtype=torch.float64)
    wh = 4 + torch.rand(n, 2, generator=g, dtype=torch.float64) * 60
    ang = (torch.rand(n, 1, generator=g, dtype=torch.float64) - 0.5) * 2 * math.pi
    return torch.cat([ctr, wh, ang], 1)


def _fit(polys):
    return poly2obb(torch.from_numpy(polys), "le90")


def _assert_same_boxes(a, b):
    iou = box_iou_rotated(a, b, aligned=True)
    assert float(iou.min()) > 1 - 1e-5, float(iou.min())


@pytest.mark.parametrize("direction", ["horizontal", "vertical", "diagonal"])
def test_flip_polygons_equal_flip_boxes(direction):
    boxes = _boxes()
    polys = obb2poly(boxes).numpy()
    _assert_same_boxes(_fit(T.flip_polygons(polys, 300, 200, direction)), T.flip_boxes(boxes, 300, 200, direction))


@pytest.mark.parametrize("k", [1, 2, 3])
def test_rot90_polygons_equal_rot90_boxes(k):
    boxes = _boxes(seed=k)
    polys = obb2poly(boxes).numpy()
    _assert_same_boxes(_fit(T.rot90_polygons(polys, 300, 200, k)), T.rot90_boxes(boxes, 300, 200, k))


@pytest.mark.parametrize("angle", [-170.0, -33.3, 12.5, 90.0, 135.0])
def test_rotate_polygons_equal_rotate_boxes(angle):
    boxes = _boxes(seed=7)
    polys = obb2poly(boxes).numpy()
    _assert_same_boxes(_fit(T.rotate_polygons(polys, angle, 150, 100)), T.rotate_boxes(boxes, angle, 150, 100))


def test_resize_polygons_equal_resize_boxes():
    boxes = _boxes(seed=3)
    polys = obb2poly(boxes).numpy()
    _assert_same_boxes(_fit(T.resize_polygons(polys, 0.37, 0.37)), T.resize_boxes(boxes, 0.37))


def test_known_maps():
    p = np.array([[10, 20, 30, 20, 30, 25, 10, 25]], float)
    np.testing.assert_array_equal(T.flip_polygons(p, 100, 50, "horizontal"), [[90, 20, 70, 20, 70, 25, 90, 25]])
    np.testing.assert_array_equal(T.flip_polygons(p, 100, 50, "vertical"), [[10, 30, 30, 30, 30, 25, 10, 25]])
    # one clockwise quarter turn of a 100 x 50 image: (x, y) -> (50 - y, x)
    np.testing.assert_array_equal(T.rot90_polygons(p, 100, 50, 1), [[30, 10, 30, 30, 25, 30, 25, 10]])
    np.testing.assert_allclose(
        T.rotate_polygons(np.array([[60, 50] * 4], float), 90, 50, 50), [[50, 60] * 4], atol=1e-12
    )  # right of the centre -> below it: clockwise on screen
    with pytest.raises(ValueError, match="direction"):
        T.flip_polygons(p, 1, 1, "sideways")


def _sample_with_block():
    """A 60 x 40 image with one bright 6 x 4 block at x in [12, 18), y in [8, 12)."""
    img = np.zeros((40, 60, 3), np.uint8)
    img[8:12, 12:18] = 255
    poly = np.array([[12, 8, 18, 8, 18, 12, 12, 12]], float)
    return T.Sample(img, poly, np.array([1]), np.array([False]))


def _bright_centroid(img):
    ys, xs = np.nonzero(img[..., 0].astype(float) > 127)
    return xs.mean() + 0.5, ys.mean() + 0.5  # pixel centres sit at +0.5 in continuous coordinates


class _Fixed:
    """An rng stand-in whose draws are fixed: random() -> 0 (always apply), choice/integers -> given."""

    def __init__(self, choice=0, integer=0):
        self.c, self.i = choice, integer

    def random(self):
        return 0.0

    def choice(self, n, p=None):
        return self.c

    def integers(self, n):
        return self.i


@pytest.mark.parametrize(
    "transform, rng",
    [
        (T.RandomFlip(1.0, 0.0, 0.0), np.random.default_rng(0)),
        (T.RandomFlip(0.0, 1.0, 0.0), np.random.default_rng(0)),
        (T.RandomFlip(0.0, 0.0, 1.0), np.random.default_rng(0)),
        (T.RandomRot90(1.0, (1,)), np.random.default_rng(0)),
        (T.RandomRot90(1.0, (3,)), np.random.default_rng(0)),
        (T.Resize((120, 120)), np.random.default_rng(0)),
        (T.Resize((90, 30), keep_ratio=False), np.random.default_rng(0)),
    ],
)
def test_pixels_follow_polygons(transform, rng):
    out = transform(_sample_with_block(), rng)
    cx, cy = out.polygons[0, 0::2].mean(), out.polygons[0, 1::2].mean()
    bx, by = _bright_centroid(out.image)
    assert abs(cx - bx) < 0.26 and abs(cy - by) < 0.26


@pytest.mark.parametrize("angle", [90.0, -90.0, 180.0, 30.0])
def test_rotate_pixels_follow_polygons(angle):
    s = _sample_with_block()
    s.image[:] = 0
    s.image[14:26, 24:36] = 255  # a 12 x 12 block around the centre region, bilinear-safe
    s.polygons = np.array([[24, 14, 36, 14, 36, 26, 24, 26]], float)
    out = T.rotate(s, angle)
    ys, xs = np.nonzero(out.image[..., 0] > 127)
    assert abs(out.polygons[0, 0::2].mean() - (xs.mean() + 0.5)) < 0.3
    assert abs(out.polygons[0, 1::2].mean() - (ys.mean() + 0.5)) < 0.3


def test_rotate_drops_objects_whose_centre_leaves():
    img = np.zeros((100, 100, 3), np.uint8)
    polys = obb2poly(torch.tensor([[5.0, 5, 4, 4, 0], [95, 50, 4, 4, 0], [50, 50, 30, 10, 0.3]], dtype=torch.float64))
    s = T.Sample(img, polys.numpy(), np.array([0, 1, 2]), np.array([False, True, False]))
    out = T.rotate(s, 45.0)
    # (5, 5) turns to (50, 50 - 45*sqrt(2)) = (50, -13.6): outside, dropped; (95, 50) -> (81.8, 81.8): kept
    assert out.labels.tolist() == [1, 2] and out.difficult.tolist() == [True, False]
    np.testing.assert_allclose(out.polygons[0, 0::2].mean(), 50 + 45 / math.sqrt(2), atol=1e-9)
    box = poly2obb(torch.from_numpy(out.polygons[1:]), "le90")[0]
    assert box[4].item() == pytest.approx(0.3 + math.pi / 4)  # not clipped: same rectangle, turned


def test_random_rotate_rect_classes_use_quarter_turns():
    s = _sample_with_block()
    rr = T.RandomRotate(prob=1.0, angle_range=180, rect_classes=(1,))
    angles = {rr(s, np.random.default_rng(i)).meta["rotate"] for i in range(20)}
    assert angles <= {90.0, 180.0, -90.0, -180.0} and len(angles) > 1
    free = {round(T.RandomRotate(1.0, 30)(s, np.random.default_rng(i)).meta["rotate"], 6) for i in range(20)}
    assert all(-30 <= a < 30 for a in free) and len(free) == 20
    assert "rotate" not in T.RandomRotate(prob=0.0)(s, np.random.default_rng(0)).meta
    with pytest.raises(ValueError, match="angle_range"):
        T.RandomRotate(angle_range=200)


def test_flip_probabilities():
    flip = T.RandomFlip(0.25, 0.25, 0.25)
    s = _sample_with_block()
    rng = np.random.default_rng(123)
    counts = {}
    for _ in range(2000):
        d = flip(s, rng).meta.get("flip", "none")
        counts[d] = counts.get(d, 0) + 1
    assert set(counts) == {"horizontal", "vertical", "diagonal", "none"}
    assert all(abs(c / 2000 - 0.25) < 0.04 for c in counts.values())
    with pytest.raises(ValueError, match="sum to <= 1"):
        T.RandomFlip(0.5, 0.5, 0.5)


def test_resize_keep_ratio_known_size():
    s = T.Sample(
        np.zeros((1182, 1111, 3), np.uint8), np.array([[1111, 1182] * 4], float), np.array([0]), np.array([False])
    )
    out = T.Resize((1024, 1024))(s, np.random.default_rng(0))
    assert out.image.shape == (1024, 962, 3)  # scale min(1024/1111, 1024/1182) = 0.8663
    np.testing.assert_allclose(out.polygons, [[962, 1024] * 4])
    assert out.meta["scale_factor"] == (962 / 1111, 1024 / 1182)


def test_photometric_jitter():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    s = T.Sample(img, np.zeros((0, 8)), np.zeros(0, np.int64), np.zeros(0, bool))
    assert np.array_equal(T.PhotometricJitter(prob=0.0)(s, np.random.default_rng(1)).image, img)
    a = T.PhotometricJitter(prob=1.0)(s, np.random.default_rng(5)).image
    b = T.PhotometricJitter(prob=1.0)(s, np.random.default_rng(5)).image
    assert a.dtype == np.uint8 and a.shape == img.shape and np.array_equal(a, b) and not np.array_equal(a, img)
    flat = T.Sample(np.full((4, 4, 3), 100, np.uint8), s.polygons, s.labels, s.difficult)
    bright = T.PhotometricJitter(brightness=10, contrast=(1, 1), saturation=(1, 1), hue=0, prob=1.0)
    shifted = bright(flat, np.random.default_rng(2)).image.astype(int)
    assert len(np.unique(shifted)) == 1 and 90 <= shifted[0, 0, 0] <= 110
    with pytest.raises(ValueError, match="uint8 RGB"):
        T.PhotometricJitter()(T.Sample(img.astype(np.float32), s.polygons, s.labels, s.difficult), rng)


def test_compose_is_deterministic_per_generator():
    pipe = T.Compose([T.RandomRot90(0.5), T.RandomFlip(), T.RandomRotate(0.5, 180), T.PhotometricJitter()])
    s = _sample_with_block()
    a = pipe(s, np.random.default_rng(42))
    b = pipe(s, np.random.default_rng(42))
    assert np.array_equal(a.image, b.image) and np.array_equal(a.polygons, b.polygons) and a.meta == b.meta
