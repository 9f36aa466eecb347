"""RotatedDataset, collate and image reading on the real samples."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from rdet.data import read_labels
from rdet.data import transforms as T
from rdet.data.dataset import RotatedDataset, collate, read_image

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "samples"


def test_dataset_over_dota_folder():
    ds = RotatedDataset(SAMPLES / "dota/images", SAMPLES / "dota/labelTxt", version="le90")
    assert len(ds) == 2 and ds.class_names[:2] == ["plane", "baseball-diamond"]
    item = ds[0]
    assert item["image_id"] == "P0706"
    assert item["image"].shape == (3, 1182, 1111) and item["image"].dtype == torch.uint8  # the model normalises
    assert item["boxes"].shape == (536, 5) and item["labels"].shape == (536,) and item["polygons"].shape == (536, 8)
    assert int(item["difficult"].sum()) == 6
    assert bool((item["boxes"][:, 2] >= item["boxes"][:, 3]).all())
    assert float(item["boxes"][:, 4].min()) >= -np.pi / 2 - 1e-6 and float(item["boxes"][:, 4].max()) < np.pi / 2
    bgr = cv2.imread(str(SAMPLES / "dota/images/P0706.png"))
    np.testing.assert_array_equal(item["image"][:, 5, 7].numpy(), bgr[5, 7, ::-1])
    # the first label line "1054 1028 1063 1011 1111 1040 1112 1062 ship 1"
    np.testing.assert_array_equal(item["polygons"][0].numpy(), [1054, 1028, 1063, 1011, 1111, 1040, 1112, 1062])
    p1888 = ds[1]
    assert p1888["image_id"] == "P1888" and p1888["boxes"].shape == (64, 5) and p1888["meta"]["ori_size"] == (712, 557)


def test_uint8_output_and_versions():
    ds = RotatedDataset(SAMPLES / "dota/images", SAMPLES / "dota/labelTxt", version="oc")
    item = ds[1]
    assert item["image"].dtype == torch.uint8 and item["image"].shape == (3, 557, 712)
    bgr = cv2.imread(str(SAMPLES / "dota/images/P1888.png"))
    assert torch.equal(item["image"], torch.from_numpy(bgr[..., ::-1].copy()).permute(2, 0, 1))
    ang = item["boxes"][:, 4]
    assert float(ang.min()) >= -np.pi / 2 - 1e-6 and float(ang.max()) < 0  # float32 rounds -pi/2 down
    with pytest.raises(ValueError, match="unknown angle version"):
        RotatedDataset(SAMPLES / "dota/images", version="le45")


def test_dataset_from_annotations_and_transforms():
    dior = read_labels(SAMPLES / "dior_r/Annotations/00001.xml")
    pipe = T.Compose([T.RandomFlip(0.5, 0.5, 0.0), T.RandomRot90(0.5)])
    ds = RotatedDataset(annotations=[dior], transforms=pipe, seed=1)
    a, b = ds[0], ds[0]
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["boxes"], b["boxes"])  # same epoch: same draw
    seen = set()
    for epoch in range(8):
        ds.set_epoch(epoch)
        it = ds[0]
        seen.add((it["meta"].get("flip"), it["meta"].get("rot90")))
        # the golf field stays the same rectangle (551 x 435) whatever the flip/turn
        np.testing.assert_allclose(sorted(it["boxes"][0, 2:4].tolist()), [435, 551], atol=1e-4)
    assert len(seen) > 1
    assert ds.class_names[9] == "golffield"


def test_collate_lists_images_and_targets_per_image():
    ds = RotatedDataset(SAMPLES / "dota/images", SAMPLES / "dota/labelTxt")
    batch = collate([ds[1], ds[0]])
    assert set(batch) == {"images", "targets"}
    assert [tuple(x.shape) for x in batch["images"]] == [(3, 557, 712), (3, 1182, 1111)]  # not padded: the model pads
    assert all(x.dtype == torch.uint8 for x in batch["images"])
    assert [len(t["boxes"]) for t in batch["targets"]] == [64, 536]
    assert [t["image_id"] for t in batch["targets"]] == ["P1888", "P0706"]
    assert set(batch["targets"][0]) == {"boxes", "labels", "polygons", "difficult", "image_id", "meta"}
    loader = torch.utils.data.DataLoader(ds, batch_size=2, collate_fn=collate)
    assert len(next(iter(loader))["images"]) == 2
    with pytest.raises(ValueError, match="empty"):
        collate([])


def test_missing_labels_and_filter_empty(tmp_path):
    img_dir, lab_dir = tmp_path / "images", tmp_path / "labelTxt"
    img_dir.mkdir(), lab_dir.mkdir()
    cv2.imwrite(str(img_dir / "a.png"), np.zeros((32, 48, 3), np.uint8))
    cv2.imwrite(str(img_dir / "b.png"), np.zeros((32, 48, 3), np.uint8))
    (lab_dir / "a.txt").write_text("1 1 10 1 10 5 1 5 plane 0\n")
    ds = RotatedDataset(img_dir)  # labels default to the sibling labelTxt folder
    assert len(ds) == 2 and ds.num_empty == 1 and ds[1]["boxes"].shape == (0, 5)
    assert len(RotatedDataset(img_dir, filter_empty=True)) == 1
    with pytest.raises(FileNotFoundError, match="label folder not found"):
        RotatedDataset(img_dir, tmp_path / "nope")


def test_size_mismatch_is_an_error(tmp_path):
    ann = read_labels(SAMPLES / "dior_r/Annotations/00001.xml")
    ann.width = 799
    with pytest.raises(ValueError, match="image is 800x800 but its labels say 799x800"):
        RotatedDataset(annotations=[ann])[0]


def test_read_image_conversions(tmp_path):
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4)
    cv2.imwrite(str(tmp_path / "g.png"), gray)
    out = read_image(tmp_path / "g.png")
    assert out.shape == (3, 4, 3) and (out == gray[..., None]).all()
    bgra = np.zeros((2, 2, 4), np.uint8)
    bgra[..., 0], bgra[..., 2], bgra[..., 3] = 10, 30, 7  # blue 10, red 30, alpha 7
    cv2.imwrite(str(tmp_path / "a.png"), bgra)
    rgba = read_image(tmp_path / "a.png")
    assert rgba.shape == (2, 2, 3) and rgba[0, 0].tolist() == [30, 0, 10]
    deep = np.array([[0, 257 * 100], [65535, 1000]], np.uint16)
    cv2.imwrite(str(tmp_path / "d.png"), deep)
    with pytest.raises(ValueError, match=r"d.png is a 16-bit image; pass uint16="):
        read_image(tmp_path / "d.png")
    assert read_image(tmp_path / "d.png", uint16="scale")[..., 0].tolist() == [[0, 100], [255, 4]]
    assert read_image(tmp_path / "d.png", uint16="stretch")[..., 0].tolist() == [[0, 100], [255, 4]]
    deep12 = np.array([[100, 4095], [2000, 100]], np.uint16)  # 12-bit data
    cv2.imwrite(str(tmp_path / "e.png"), deep12)
    assert read_image(tmp_path / "e.png", uint16="stretch")[..., 0].tolist() == [[0, 255], [121, 0]]
    with pytest.raises(FileNotFoundError, match="missing.png"):
        read_image(tmp_path / "missing.png")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(ValueError, match="bad.png: cannot decode"):
        read_image(tmp_path / "bad.png")
    cv2.imwrite(str(tmp_path / "f.tif"), np.zeros((2, 2), np.float32))
    with pytest.raises(ValueError, match="unsupported pixel type float32"):
        read_image(tmp_path / "f.tif")
    with pytest.raises(ValueError, match="uint16 must be one of"):
        read_image(tmp_path / "g.png", uint16="clip")
