"""Patch names, patch -> image mapping, class-wise NMS merge, Task1 files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from rdet.boxes import obb2poly
from rdet.data import merge as M
from rdet.data import read_labels
from rdet.data import split as S
from rdet.data.task1 import Task1Detections, parse_task1, read_task1, write_task1
from rdet.ops import box_iou_rotated

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "samples"


def test_parse_patch_name():
    assert M.parse_patch_name("P0706__1024__0___824") == M.PatchName("P0706", 0, 824, 1.0, "1024")
    assert M.parse_patch_name("P0706__1__0___256.png") == M.PatchName("P0706", 0, 256, 1.0, "1")
    assert M.parse_patch_name("P0706__0.5__100___50") == M.PatchName("P0706", 100, 50, 0.5, "0.5")
    assert M.parse_patch_name("P0706__1.5__3___4.txt").rate == 1.5
    assert M.parse_patch_name("a__b__1024__3___4").image_id == "a__b"
    assert M.parse_patch_name("P1__8__0___0", naming="size").rate == 1.0
    assert M.parse_patch_name("P1__8__0___0").rate == 8.0  # auto: a value below 16 is a rate
    for bad in ("P0706", "P0706__1024__0__824", "P0706__x__0___0"):
        with pytest.raises(ValueError, match="is not <image>__<size|rate>__<x>___<y>"):
            M.parse_patch_name(bad)


def test_patch_to_image():
    box = torch.tensor([[10.0, 20, 8, 4, 0.3]])
    np.testing.assert_allclose(
        M.patch_to_image(box, M.parse_patch_name("I__1024__100___200")).numpy(), [[110, 220, 8, 4, 0.3]], rtol=1e-6
    )
    np.testing.assert_allclose(
        M.patch_to_image(box, M.parse_patch_name("I__0.5__100___200")).numpy(), [[220, 440, 16, 8, 0.3]], rtol=1e-6
    )


def test_split_then_merge_recovers_every_object(tmp_path):
    """Ground truth of P0706 through the splitter (overlapping 512 px patches) and back: every object comes
    back exactly once, at its original place."""
    ann = read_labels(SAMPLES / "dota/labelTxt/P0706.txt")
    names, _ = S.split_image(SAMPLES / "dota/images/P0706.png", ann, tmp_path, S.SplitConfig(512, 256))
    dets, total = {}, 0
    for n in names:
        patch = read_labels(tmp_path / "labelTxt" / f"{n}.txt")
        boxes = patch.boxes("le90")
        dets[n] = (boxes, torch.linspace(1, 0.5, len(boxes)), torch.from_numpy(patch.labels))
        total += len(boxes)
    assert total > 2 * len(ann)  # duplicates across overlapping patches
    merged = M.merge_patch_detections(dets, iou_threshold=0.5)
    boxes, scores, labels = merged["P0706"]
    gt = ann.boxes("le90")
    assert len(boxes) == len(gt) == 536
    iou = box_iou_rotated(gt.double(), boxes.double())
    best = iou.max(1).values
    assert float(best.min()) > 1 - 1e-4  # float32 boxes of ~10 px at ~1000 px from the origin
    assert torch.equal(labels[iou.argmax(1)], torch.from_numpy(ann.labels))
    assert bool((scores[:-1] >= scores[1:]).all())


def test_merge_is_class_wise():
    box = torch.tensor([[50.0, 50, 20, 10, 0]])
    dets = {
        "I__1024__0___0": (box, torch.tensor([0.9]), torch.tensor([0])),
        "I__1024__10___0": (box - torch.tensor([10.0, 0, 0, 0, 0]), torch.tensor([0.8]), torch.tensor([0])),
        "I__1024__20___0": (box - torch.tensor([20.0, 0, 0, 0, 0]), torch.tensor([0.7]), torch.tensor([1])),
    }
    boxes, scores, labels = M.merge_patch_detections(dets)["I"]
    assert scores.tolist() == pytest.approx([0.9, 0.7]) and labels.tolist() == [0, 1]
    with pytest.raises(ValueError, match=r"expected boxes \[N, 5\]"):
        M.merge_patch_detections({"I__1024__0___0": (box[:, :4], torch.tensor([0.9]), torch.tensor([0]))})


def test_task1_write_read(tmp_path):
    det = {"plane": Task1Detections(["P1", "P2"], np.array([0.5, 0.9]), np.arange(16, dtype=float).reshape(2, 8))}
    paths = write_task1(tmp_path, det, ["plane", "ship"])
    assert [p.name for p in paths] == ["Task1_plane.txt", "Task1_ship.txt"]
    assert (tmp_path / "Task1_plane.txt").read_text().splitlines() == [
        "P2 0.900000 8.00 9.00 10.00 11.00 12.00 13.00 14.00 15.00",
        "P1 0.500000 0.00 1.00 2.00 3.00 4.00 5.00 6.00 7.00",
    ]
    assert (tmp_path / "Task1_ship.txt").read_text() == ""
    back = read_task1(tmp_path)
    assert set(back) == {"plane", "ship"} and len(back["ship"]) == 0
    assert back["plane"].image_ids == ["P2", "P1"] and back["plane"].scores.tolist() == [0.9, 0.5]
    np.testing.assert_array_equal(back["plane"].polygons[1], np.arange(8))
    with pytest.raises(ValueError, match="detections for classes"):
        write_task1(tmp_path, det, ["ship"])
    with pytest.raises(ValueError, match=r"bad.txt:2: expected 10 fields"):
        parse_task1("P1 0.5 0 0 1 0 1 1 0 1\nP1 0.5 0 0\n", "bad.txt")
    with pytest.raises(ValueError, match=r"bad.txt:1: NaN or infinite"):
        parse_task1("P1 nan 0 0 1 0 1 1 0 1\n", "bad.txt")


def test_merge_to_task1_and_task1_dir(tmp_path):
    b = torch.tensor([[30.0, 40, 20, 10, 0]])
    dets = {
        "P5__1024__0___0": (b, torch.tensor([0.9]), torch.tensor([1])),
        "P5__1024__10___0": (b - torch.tensor([10.0, 0, 0, 0, 0]), torch.tensor([0.6]), torch.tensor([1])),
    }
    M.merge_to_task1(dets, tmp_path / "full", ["plane", "ship"])
    got = read_task1(tmp_path / "full")
    assert len(got["plane"]) == 0 and got["ship"].image_ids == ["P5"]
    np.testing.assert_allclose(got["ship"].polygons[0], obb2poly(b.double())[0].numpy(), atol=0.005)
    # devkit flow: patch-level Task1 files (rate 0.5 patches) -> full-image Task1 files
    poly = np.array([10, 10, 30, 10, 30, 20, 10, 20], float)
    patch = {
        "ship": Task1Detections(
            ["P5__0.5__0___0", "P5__0.5__5___0", "P6__0.5__0___0"],
            np.array([0.8, 0.7, 0.4]),
            np.stack([poly, poly - [5, 0] * 4, poly]),
        )
    }
    write_task1(tmp_path / "patches", patch)
    M.merge_task1_dir(tmp_path / "patches", tmp_path / "merged")
    merged = read_task1(tmp_path / "merged")["ship"]
    assert merged.image_ids == ["P5", "P6"] and merged.scores.tolist() == [0.8, 0.4]
    np.testing.assert_allclose(merged.polygons, [poly * 2, poly * 2])
