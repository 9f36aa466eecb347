"""Synthetic aerial scenes: determinism, speed, geometry of the labels, readability as DOTA."""

from __future__ import annotations

import cv2
import numpy as np

from rdet.data import read_labels
from rdet.data.classes import SYNTHETIC
from rdet.data.dataset import RotatedDataset
from rdet.data.synthetic import make_synthetic_dataset, make_synthetic_scene


def test_deterministic_by_seed_and_prefix_stable(tmp_path):
    a = make_synthetic_dataset(tmp_path / "a", 5, size=128, seed=7)
    b = make_synthetic_dataset(tmp_path / "b", 8, size=128, seed=7)
    c = make_synthetic_dataset(tmp_path / "c", 5, size=128, seed=8)
    for ra, rb in zip(a, b):
        assert np.array_equal(cv2.imread(ra.image_path), cv2.imread(rb.image_path))
        assert open(ra.label_path).read() == open(rb.label_path).read()
    assert any(open(ra.label_path).read() != open(rc.label_path).read() for ra, rc in zip(a, c))


def test_dataset_files(tmp_path):
    # (its speed, ~0.7 s for these 64 scenes on one idle core, is not asserted: tests check behaviour)
    recs = make_synthetic_dataset(tmp_path, 64, size=256, seed=0)
    assert len(recs) == 64
    assert len(list((tmp_path / "images").glob("*.png"))) == len(list((tmp_path / "labelTxt").glob("*.txt"))) == 64


def test_labels_geometry():
    counts = np.zeros(4, int)
    for i in range(24):
        img, ann = make_synthetic_scene(np.random.default_rng([0, i]), size=256)
        assert img.shape == (256, 256, 3) and img.dtype == np.uint8
        assert ann.class_names == list(SYNTHETIC) and 1 <= len(ann) <= 10
        assert ann.polygons.min() >= 0 and ann.polygons.max() <= 256  # whole objects inside the image
        boxes = ann.boxes("le90").numpy()
        ratio = boxes[:, 2] / boxes[:, 3]
        for label, lo, hi in ((0, 1.1, 1.34), (1, 3.9, 6.0), (2, 1.8, 2.25), (3, 1.0, 1.0)):
            sel = ann.labels == label
            assert ((ratio[sel] >= lo - 1e-4) & (ratio[sel] <= hi + 1e-4)).all(), (label, ratio[sel])
        # discs are labelled axis aligned (a square: angle 0 or -pi/2, depending on float rounding of w vs h)
        np.testing.assert_allclose(np.sin(2 * boxes[ann.labels == 3, 4]), 0, atol=1e-6)
        # objects do not overlap: centres further apart than the sum of circumradii
        r = np.hypot(boxes[:, 2], boxes[:, 3]) / 2
        d = np.hypot(*(boxes[:, None, :2] - boxes[None, :, :2]).transpose(2, 0, 1))
        assert (d + np.eye(len(r)) * 1e9 > r[:, None] + r[None, :]).all()
        # the object is drawn where its box is: tanks have a light centre, planes a light fuselage
        for (cx, cy), label in zip(boxes[:, :2], ann.labels):
            if label in (0, 3):
                assert img[int(cy), int(cx)].min() > 180
        counts += np.bincount(ann.labels, minlength=4)
    assert (counts > 10).all()


def test_written_files_read_back_as_dota(tmp_path):
    recs = make_synthetic_dataset(tmp_path, 3, size=96, seed=1, objects=(2, 4), class_ids=(1, 3))
    for r in recs:
        back = read_labels(r.label_path, classes="synthetic")
        np.testing.assert_allclose(back.polygons, r.polygons, atol=1e-4)
        assert back.names == r.names and set(back.names) <= {"ship", "storage-tank"}
        assert (back.width, back.height) == (96, 96)
    ds = RotatedDataset(tmp_path / "images", tmp_path / "labelTxt", classes="synthetic")
    item = ds[0]
    assert item["image"].shape == (3, 96, 96) and item["boxes"].shape == (len(recs[0]), 5)
