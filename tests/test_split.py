"""DOTA splitter: golden tiles, window rules, IoF rule, devkit cutting, padding, resume, processes, CLI."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import shapely.geometry as sg

from rdet.commands.split import cli as split_cli
from rdet.data import read_labels
from rdet.data import split as S
from rdet.data.synthetic import make_synthetic_dataset

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "samples"
GOLDEN = SAMPLES / "dota_split_512"


@pytest.fixture(scope="module")
def p0706_devkit_512(tmp_path_factory):
    out = tmp_path_factory.mktemp("split512")
    ann = read_labels(SAMPLES / "dota/labelTxt/P0706.txt")
    names, resumed = S.split_image(SAMPLES / "dota/images/P0706.png", ann, out, S.SplitConfig(512, 256, style="devkit"))
    return out, names, resumed


@pytest.mark.parametrize("name", ["P0706__1__0___0", "P0706__1__0___256", "P0706__1__0___512"])
def test_golden_dota_split_512(p0706_devkit_512, name):
    out, names, _ = p0706_devkit_512
    assert name in names
    assert (out / "labelTxt" / f"{name}.txt").read_text() == (GOLDEN / "labelTxt" / f"{name}.txt").read_text()
    ours = cv2.imread(str(out / "images" / f"{name}.png"), cv2.IMREAD_UNCHANGED)
    gold = cv2.imread(str(GOLDEN / "images" / f"{name}.png"), cv2.IMREAD_UNCHANGED)
    assert ours.shape == gold.shape == (512, 512, 3) and np.array_equal(ours, gold)


def test_devkit_windows_of_p0706(p0706_devkit_512):
    _, names, resumed = p0706_devkit_512
    # 1111 x 1182 px, 512 windows every 256 px; the last column/row is shifted back to end at the border
    assert S.devkit_windows(1111, 1182, 512, 256) == [(x, y) for x in (0, 256, 512, 599) for y in (0, 256, 512, 670)]
    assert len(names) == 16 and resumed == 0 and names[-1] == "P0706__1__599___670"


def test_negative_tile_p1088():
    """The golden P1088 tile (1024, 768) has an empty label file: no object of P1088 reaches it."""
    ann = read_labels(SAMPLES / "dota/labelTxt_only/P1088.txt")
    assert (GOLDEN / "labelTxt/P1088__1__1024___768.txt").read_text() == ""
    assert all(S.devkit_cut(p, 1024, 768, 1536, 1280, 512, 0.7) is None for p in ann.polygons)
    ((idx, trunc),) = S.window_objects(ann.polygons, np.array([[1024, 768, 1536, 1280]]), 0.7)
    assert len(idx) == 0 and len(trunc) == 0


def test_sliding_windows_mmrotate():
    # P0706 with the seed setting 1024 / 200: step 824, the last start shifted to 1111-1024 and 1182-1024
    np.testing.assert_array_equal(
        S.sliding_windows(1111, 1182, 1024, 200),
        [[0, 0, 1024, 1024], [0, 158, 1024, 1182], [87, 0, 1111, 1024], [87, 158, 1111, 1182]],
    )
    # smaller than a window: one padded window, kept although it is mostly outside the image
    np.testing.assert_array_equal(S.sliding_windows(500, 300, 1024, 200), [[0, 0, 1024, 1024]])
    # img_rate_thr: with rates (0.5, 1), 2048-windows of a 1000 px high image are < 60% image: dropped
    cfg = S.SplitConfig(1024, 200, rates=(0.5, 1.0))
    plan = S._patch_plan("A", 3000, 1000, cfg)
    assert {p[0].split("__")[1] for p in plan} == {"1024"} and len(plan) == 4  # x 0, 824, 1648, 1976
    plan = S._patch_plan("A", 3000, 1500, cfg)
    assert {p[0].split("__")[1] for p in plan} == {"1024", "2048"}


def test_window_objects_iof_rule():
    polys = np.array(
        [
            [10, 10, 30, 10, 30, 20, 10, 20],  # inside
            [90, 10, 110, 10, 110, 20, 90, 20],  # half outside: IoF 0.5
            [92, 30, 102, 30, 102, 40, 92, 40],  # IoF 0.8
            [93, 50, 103, 50, 103, 60, 93, 60],  # IoF 0.7 exactly: kept (>=)
            [94, 70, 104, 70, 104, 80, 94, 80],
        ],
        np.float64,
    )  # IoF 0.6
    ((idx, trunc),) = S.window_objects(polys, np.array([[0, 0, 100, 100]]), 0.7)
    assert idx.tolist() == [0, 2, 3] and trunc.tolist() == [False, True, True]


def test_mmrotate_style_labels_on_p0706(tmp_path):
    ann = read_labels(SAMPLES / "dota/labelTxt/P0706.txt")
    ann = ann.select(np.arange(len(ann)) < 200)
    cfg = S.SplitConfig(512, 256)
    names, _ = S.split_image(SAMPLES / "dota/images/P0706.png", ann, tmp_path, cfg)
    assert names[0] == "P0706__512__0___0" and len(names) == 16
    patch = read_labels(tmp_path / "labelTxt/P0706__512__0___0.txt")
    window = sg.box(0, 0, 512, 512)
    expect = []
    for poly, name, diff in zip(ann.polygons, ann.names, ann.difficulty):
        g = sg.Polygon(poly.reshape(4, 2))
        iof = g.intersection(window).area / g.area
        if iof >= 0.7:
            expect.append((tuple(poly), name, diff if iof == 1 else 2))
    got = [(tuple(p), n, d) for p, n, d in zip(patch.polygons, patch.names, patch.difficulty)]
    assert got == expect and len(got) == 38
    ok = read_labels(tmp_path / "labelTxt/P0706__512__256___256.txt")
    assert np.abs(ok.polygons).max() < 2000  # translated into the patch frame
    img = cv2.imread(str(tmp_path / "images/P0706__512__599___670.png"))
    full = cv2.imread(str(SAMPLES / "dota/images/P0706.png"))
    assert np.array_equal(img, full[670:1182, 599:1111])


def test_clip_polygon_matches_shapely():
    rng = np.random.default_rng(0)
    for _ in range(200):
        c, (w, h), a = rng.uniform(-20, 120, 2), rng.uniform(5, 60, 2), rng.uniform(0, np.pi)
        u, v = np.array([np.cos(a), np.sin(a)]) * w / 2, np.array([-np.sin(a), np.cos(a)]) * h / 2
        quad = np.array([c - u - v, c + u - v, c + u + v, c - u + v])
        ours = S.clip_polygon(quad, 0, 0, 100, 80)
        ref = sg.Polygon(quad).intersection(sg.box(0, 0, 100, 80))
        area = abs(S._shoelace(ours)) if len(ours) >= 3 else 0.0
        assert area == pytest.approx(ref.area, abs=1e-9)
        if ref.area > 0:
            ref_pts = np.array(ref.exterior.coords)[:-1]
            assert len(ours) == len(ref_pts)
            assert np.abs(np.sort(ours, 0) - np.sort(ref_pts, 0)).max() < 1e-9


def test_devkit_cut_rules():
    # shortest edge of a pentagon merged into its midpoint
    pent = np.array([[0, 0], [10, 0], [10, 10], [1, 10], [0, 9]], float)
    np.testing.assert_array_equal(S._five_to_four(pent), [[0, 0], [10, 0], [10, 10], [0.5, 9.5]])
    # a square cut in half by the window's right edge: clipped, clamped to [1, size], difficulty 2 (IoF 0.5)
    out, low = S.devkit_cut(np.array([90, 10, 110, 10, 110, 30, 90, 30.0]), 0, 0, 100, 100, 100, 0.7)
    np.testing.assert_array_equal(out, [90, 10, 100, 10, 100, 30, 90, 30])
    assert low
    out, low = S.devkit_cut(np.array([-2.5, 10, 20, 10, 20, 30, -2.5, 30]), 0, 0, 100, 100, 100, 0.7)
    np.testing.assert_array_equal(out, [1, 10, 20, 10, 20, 30, 1, 30])  # x clamped to 1, IoF 0.89
    assert not low
    assert S.devkit_cut(np.array([200, 0, 210, 0, 210, 5, 200, 5.0]), 0, 0, 100, 100, 100, 0.7) is None


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    root = tmp_path_factory.mktemp("syn")
    make_synthetic_dataset(root, 2, size=200, seed=3)
    return root


def test_padding_and_multiscale_names(synthetic, tmp_path):
    img = synthetic / "images/syn_00000.png"
    ann = read_labels(synthetic / "labelTxt/syn_00000.txt")
    names, _ = S.split_image(img, ann, tmp_path, S.SplitConfig(128, 28, rates=(0.5, 1.0)))
    assert sorted({n.split("__")[1] for n in names}) == ["128", "256"]
    pad = cv2.imread(str(tmp_path / "images/syn_00000__256__0___0.png"))
    assert pad.shape == (256, 256, 3)
    np.testing.assert_array_equal(pad[220, 220], (104, 116, 124))  # ImageNet mean, RGB (124, 116, 104), as BGR
    np.testing.assert_array_equal(pad[:200, :200], cv2.imread(str(img)))
    names, _ = S.split_image(img, ann, tmp_path / "dk", S.SplitConfig(64, 16, rates=(0.5,), style="devkit"))
    assert names[0] == "syn_00000__0.5__0___0"
    assert cv2.imread(str(tmp_path / "dk/images" / (names[-1] + ".png"))).shape == (64, 64, 3)
    names, _ = S.split_image(img, None, tmp_path / "np", S.SplitConfig(128, 28, padding=False))
    assert cv2.imread(str(tmp_path / "np/images" / (names[-1] + ".png"))).shape[:2] == (128, 128)
    assert not (tmp_path / "np/labelTxt").exists()


def test_resume_skips_finished_patches(synthetic, tmp_path):
    img, lab = synthetic / "images/syn_00001.png", synthetic / "labelTxt/syn_00001.txt"
    ann = read_labels(lab)
    cfg = S.SplitConfig(128, 28)
    names, resumed = S.split_image(img, ann, tmp_path, cfg)
    assert resumed == 0 and len(names) == 4
    first = tmp_path / "images" / f"{names[0]}.png"
    os.utime(first, (1, 1))
    (tmp_path / "labelTxt" / f"{names[1]}.txt").unlink()
    names2, resumed = S.split_image(img, ann, tmp_path, cfg)
    assert names2 == names and resumed == 3 and first.stat().st_mtime == 1
    assert (tmp_path / "labelTxt" / f"{names[1]}.txt").is_file()
    assert not list(tmp_path.rglob(".*tmp*"))
    _, resumed = S.split_image(img, ann, tmp_path, cfg, resume=False)
    assert resumed == 0 and first.stat().st_mtime > 1


def test_split_dataset_processes_and_cli(synthetic, tmp_path, capsys):
    rep = S.split_dataset(
        synthetic / "images",
        synthetic / "labelTxt",
        tmp_path / "a",
        S.SplitConfig(128, 28),
        nproc=2,
        show_progress=False,
    )
    assert rep == {"images": 2, "patches": 8, "resumed": 0, "missing_labels": [], "depth": {}}
    assert len(list((tmp_path / "a/labelTxt").glob("*.txt"))) == 8
    rc = split_cli(
        [
            "--images",
            str(synthetic / "images"),
            "--labels",
            str(synthetic / "labelTxt"),
            "--output",
            str(tmp_path / "a"),
            "--tile",
            "128",
            "--overlap",
            "28",
            "--nproc",
            "1",
        ]
    )
    assert rc == 0 and "into 8 tiles (8 already present)" in capsys.readouterr().out
    with pytest.raises(ValueError, match="gap must lie"):
        S.SplitConfig(128, 128)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        S.split_dataset(tmp_path / "nowhere", None, tmp_path / "b")


def test_split_refuses_truncated_and_oversized_images(tmp_path, capsys):
    img_dir = tmp_path / "images"
    img_dir.mkdir()
    rng = np.random.default_rng(0)
    ok, buf = cv2.imencode(".jpg", rng.integers(0, 256, (300, 300, 3), dtype=np.uint8))
    (img_dir / "cut.jpg").write_bytes(buf.tobytes()[: len(buf) // 2])  # libjpeg would fill the rest with grey
    with pytest.raises(ValueError, match="cut.jpg: cannot decode the image: truncated JPEG"):
        S.split_dataset(img_dir, None, tmp_path / "out", S.SplitConfig(128, 28), show_progress=False)
    assert not list((tmp_path / "out" / "images").glob("*"))  # no patch written
    assert split_cli(["--images", str(img_dir), "--output", str(tmp_path / "o2"), "--nproc", "1"]) == 2
    err = [ln for ln in capsys.readouterr().err.strip().splitlines() if not ln.startswith(("split ", "split:"))]  # bar
    assert len(err) == 1 and err[0].startswith("rdet split: error:") and "truncated JPEG" in err[0]
    (img_dir / "cut.jpg").write_bytes(buf.tobytes())
    with pytest.raises(ValueError, match=r"cut.jpg: 300 x 300 = 90,000 pixels exceeds the pixel budget of 1,000"):
        S.split_dataset(img_dir, None, tmp_path / "o3", S.SplitConfig(128, 28, max_pixels=1000), show_progress=False)


def test_split_16_bit_depth_is_explicit(tmp_path):
    img_dir = tmp_path / "images"
    img_dir.mkdir()
    deep = np.full((100, 120, 3), 40000, np.uint16)
    deep[:, 60:] = 1000
    cv2.imwrite(str(img_dir / "d.png"), deep)
    # .jpg cannot hold 16 bits: scaled to 8 bits (value / 257), never clipped to white
    rep = S.split_dataset(img_dir, None, tmp_path / "j", S.SplitConfig(64, 0, ext=".jpg"), show_progress=False)
    assert rep["depth"] == {str(img_dir / "d.png"): "16-bit scaled to 8-bit (/257)"}
    patch = cv2.imread(str(tmp_path / "j/images/d__64__0___0.jpg"), cv2.IMREAD_UNCHANGED)
    assert patch.dtype == np.uint8 and abs(int(patch[10, 10, 0]) - 156) <= 2  # 40000 / 257 = 155.6
    # .png holds 16 bits: kept as they are
    rep = S.split_dataset(img_dir, None, tmp_path / "p", S.SplitConfig(64, 0), show_progress=False)
    assert rep["depth"] == {str(img_dir / "d.png"): "16-bit kept (.png holds 16 bits)"}
    patch = cv2.imread(str(tmp_path / "p/images/d__64__56___0.png"), cv2.IMREAD_UNCHANGED)
    assert patch.dtype == np.uint16 and patch[0, 0, 0] == 40000 and patch[0, -1, 0] == 1000
    stretched = S.split_dataset(
        img_dir, None, tmp_path / "s", S.SplitConfig(64, 0, ext=".jpg", depth="stretch"), show_progress=False
    )
    assert "stretched" in stretched["depth"][str(img_dir / "d.png")]
    with pytest.raises(ValueError, match="depth='keep' needs an output format that holds 16 bits"):
        S.SplitConfig(64, 0, ext=".jpg", depth="keep")
