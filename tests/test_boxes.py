import math

import pytest
import torch

from rdet import boxes as B

PI = math.pi


def test_obb2poly_known_corners():
    # 4x2 box at (10, 20) rotated by +90 deg (clockwise on screen): u points down, v points left.
    box = torch.tensor([10.0, 20.0, 4.0, 2.0, PI / 2], dtype=torch.float64)
    poly = B.obb2poly(box).reshape(4, 2)
    expected = torch.tensor([[11.0, 18.0], [11.0, 22.0], [9.0, 22.0], [9.0, 18.0]], dtype=torch.float64)
    torch.testing.assert_close(poly, expected)


def test_axis_aligned_poly_order_is_clockwise_on_screen():
    poly = B.obb2poly(torch.tensor([5.0, 5.0, 4.0, 2.0, 0.0])).reshape(4, 2)
    assert poly.tolist() == [[3.0, 4.0], [7.0, 4.0], [7.0, 6.0], [3.0, 6.0]]


@pytest.mark.parametrize(
    "version,lo,hi,longer",
    [("oc", -PI / 2, 0.0, False), ("le90", -PI / 2, PI / 2, True), ("le135", -PI / 4, 3 * PI / 4, True)],
)
def test_regularize_ranges_and_same_rectangle(version, lo, hi, longer):
    g = torch.Generator().manual_seed(0)
    n = 2000
    boxes = torch.cat(
        [
            torch.rand(n, 2, generator=g, dtype=torch.float64) * 100,
            torch.rand(n, 2, generator=g, dtype=torch.float64) * 50 + 1,
            (torch.rand(n, 1, generator=g, dtype=torch.float64) - 0.5) * 8 * PI,
        ],
        1,
    )
    reg = B.regularize(boxes, version)
    assert (reg[:, 4] >= lo - 1e-12).all() and (reg[:, 4] < hi + 1e-12).all()
    if longer:
        assert (reg[:, 2] >= reg[:, 3]).all()
    # Same rectangle: same corner set.
    p0 = B.obb2poly(boxes).reshape(n, 4, 2)
    p1 = B.obb2poly(reg).reshape(n, 4, 2)
    d = torch.cdist(p0, p1).amin(-1).amax(-1)
    assert d.max() < 1e-9


def test_regularize_known_values():
    # Horizontal 4x2 box: le90 keeps it; oc rewrites it to (2, 4, -pi/2) since oc's range is [-pi/2, 0).
    box = torch.tensor([0.0, 0.0, 4.0, 2.0, 0.0], dtype=torch.float64)
    assert B.regularize(box, "le90").tolist() == [0.0, 0.0, 4.0, 2.0, 0.0]
    torch.testing.assert_close(
        B.regularize(box, "oc"), torch.tensor([0.0, 0.0, 2.0, 4.0, -PI / 2], dtype=torch.float64)
    )
    # A tall box at angle 0 in le90 becomes wide at -pi/2 (pi/2 wraps into the half-open range).
    tall = torch.tensor([0.0, 0.0, 2.0, 4.0, 0.0], dtype=torch.float64)
    torch.testing.assert_close(
        B.regularize(tall, "le90"), torch.tensor([0.0, 0.0, 4.0, 2.0, -PI / 2], dtype=torch.float64)
    )
    # le135 keeps angles in [-pi/4, 3pi/4): a wide box at -pi/2 is the same box at +pi/2.
    b = torch.tensor([0.0, 0.0, 4.0, 2.0, -PI / 2], dtype=torch.float64)
    torch.testing.assert_close(
        B.regularize(b, "le135"), torch.tensor([0.0, 0.0, 4.0, 2.0, PI / 2], dtype=torch.float64)
    )


def test_unknown_version_lists_valid():
    with pytest.raises(ValueError, match="oc, le90, le135"):
        B.regularize(torch.zeros(1, 5), "le45")


@pytest.mark.parametrize("version", B.ANGLE_VERSIONS)
def test_round_trip_obb_poly_obb(version):
    g = torch.Generator().manual_seed(1)
    n = 3000
    boxes = torch.cat(
        [
            torch.rand(n, 2, generator=g, dtype=torch.float64) * 1000,
            torch.rand(n, 2, generator=g, dtype=torch.float64) * 300 + 0.5,
            (torch.rand(n, 1, generator=g, dtype=torch.float64) - 0.5) * 4 * PI,
        ],
        1,
    )
    reg = B.regularize(boxes, version)
    back = B.poly2obb(B.obb2poly(reg), version)
    # Squares (w == h) have two valid descriptions only in their tie rule; random data has none.
    torch.testing.assert_close(back, reg, atol=1e-7, rtol=0)


def test_poly2obb_shuffled_vertices_and_non_rectangle():
    # Vertex order does not matter.
    poly = torch.tensor([[7.0, 6.0, 3.0, 4.0, 7.0, 4.0, 3.0, 6.0]])
    box = B.poly2obb(poly, "le90")
    torch.testing.assert_close(box, torch.tensor([[5.0, 5.0, 4.0, 2.0, 0.0]]))
    # A general quadrilateral gets its minimum-area enclosing rectangle; a diamond is its own (area 2, 45 deg).
    diamond = torch.tensor([[0.0, -1.0, 1.0, 0.0, 0.0, 1.0, -1.0, 0.0]], dtype=torch.float64)
    b = B.poly2obb(diamond, "le90")
    assert abs(b[0, 2].item() * b[0, 3].item() - 2.0) < 1e-12  # area 2: the diamond itself
    assert abs(abs(b[0, 4].item()) - PI / 4) < 1e-12


def test_hbox_round_trip_and_enclosing():
    hb = torch.tensor([[1.0, 2.0, 5.0, 4.0]])
    torch.testing.assert_close(B.obb2hbox(B.hbox2obb(hb)), hb)
    enc = B.obb2hbox(torch.tensor([0.0, 0.0, 2.0, 2.0, PI / 4], dtype=torch.float64))
    r = math.sqrt(2)
    torch.testing.assert_close(enc, torch.tensor([-r, -r, r, r], dtype=torch.float64))


def test_interop_degrees_ccw():
    box = torch.tensor([1.0, 2.0, 3.0, 4.0, PI / 6], dtype=torch.float64)
    d2 = B.to_cxcywhr_deg(box)
    assert abs(d2[4].item() + 30.0) < 1e-12  # clockwise 30 deg == counter-clockwise -30 deg
    torch.testing.assert_close(B.from_cxcywhr_deg(d2), box)


def test_yolo_obb_round_trip():
    p = torch.tensor([[0.1, 0.2, 0.3, 0.2, 0.3, 0.4, 0.1, 0.4]], dtype=torch.float64)
    px = B.yolo_obb_to_poly(p, 1000, 500)
    assert px[0, :2].tolist() == [100.0, 100.0]
    torch.testing.assert_close(B.poly_to_yolo_obb(px, 1000, 500), p)
    with pytest.raises(ValueError, match="image size"):
        B.yolo_obb_to_poly(p, 0, 5)


def test_bad_shapes_name_argument():
    with pytest.raises(ValueError, match=r"boxes must have shape \[..., 5\], got \[3, 4\]"):
        B.obb2poly(torch.zeros(3, 4))
    with pytest.raises(ValueError, match="polys"):
        B.poly2obb(torch.zeros(3, 5))
