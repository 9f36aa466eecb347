"""Tiled inference: the window grid, mapping back to the scene, merging cut objects, predict and its CLI."""

import sys

import cv2
import numpy as np
import pytest
import torch

from rdet.checkpoint import save_checkpoint
from rdet.commands.predict import cli
from rdet.config import Config
from rdet.inference import io
from rdet.inference.predict import load_backend, predict
from rdet.inference.tiling import (
    Window,
    check_tiling,
    merge_detections,
    tile_windows,
    touches_inner_border,
    window_starts,
    window_to_scene,
)
from rdet.models.build import build_model
from rdet.models.detector import IMAGENET_MEAN, IMAGENET_STD


@pytest.fixture(scope="module")
def config(tiny_config) -> Config:
    return tiny_config(nms_pre=200, max_per_img=100)


@pytest.fixture(scope="module")
def tiny_model(config):
    torch.manual_seed(0)
    model = build_model(config).eval()
    torch.nn.init.zeros_(model.bbox_head.retina_cls.bias)  # scores around 0.5, so a random model detects
    return model


class BlobBackend:
    """A stand-in detector with known answers: every white axis-aligned blob in a tile is one object,
    scored by its area (a cut object scores lower than the whole one)."""

    name, device, class_names, score_thr, iou_thr = "torch", "cpu", ["blob"], None, 0.1

    def __init__(self):
        self.calls = []

    def with_thresholds(self, score_thr, iou_thr):
        return self

    def __call__(self, tiles):
        self.calls.append(len(tiles))
        out = []
        for t in tiles:
            n, _, stats, _ = cv2.connectedComponentsWithStats((t[..., 0] > 128).astype(np.uint8))
            rows = [(x + w / 2, y + h / 2, w, h, 0.0) for x, y, w, h, _ in stats[1:]]
            boxes = torch.tensor(rows, dtype=torch.float32).reshape(-1, 5)
            scores = (boxes[:, 2] * boxes[:, 3] / 10000).clamp(max=1)
            out.append((boxes, scores, torch.zeros(len(rows), dtype=torch.long)))
        return out


def blob_scene(width, height, rects):
    img = np.zeros((height, width, 3), np.uint8)
    for x0, y0, x1, y1 in rects:
        img[y0:y1, x0:x1] = 255
    return img


# ------------------------------------------------------------------------------------------------ the grid
def test_window_grid_2500x1800_tile1024_overlap200():
    # stride 824: x starts 0, 824 and then 1476 = 2500 - 1024 flush with the border; y: 0 and 1800 - 1024 = 776.
    assert window_starts(2500, 1024, 200) == [0, 824, 1476]
    assert window_starts(1800, 1024, 200) == [0, 776]
    wins = tile_windows(2500, 1800, 1024, 200)
    assert [(w.x, w.y) for w in wins] == [(0, 0), (824, 0), (1476, 0), (0, 776), (824, 776), (1476, 776)]
    assert all((w.w, w.h, w.out_w, w.out_h) == (1024, 1024, 1024, 1024) for w in wins)
    covered = np.zeros((1800, 2500), bool)
    for w in wins:
        covered[w.y : w.y + w.h, w.x : w.x + w.w] = True
    assert covered.all()  # borders included


def test_window_grid_edge_cases():
    assert window_starts(1848, 1024, 200) == [0, 824]  # the second window ends exactly at the border
    assert window_starts(1024, 1024, 200) == [0]
    assert tile_windows(900, 500, 1024, 200) == [Window(0, 0, 900, 500, 1.0, 900, 500)]  # one window, padded later
    # scale 0.5: the grid is laid on the half-size scene, so windows span 2048 scene px with a 400 px overlap
    wins = tile_windows(3000, 2000, 1024, 200, scale=0.5)
    assert [(w.x, w.y, w.w, w.h, w.out_w, w.out_h) for w in wins] == [
        (0, 0, 2048, 2000, 1024, 1000),
        (952, 0, 2048, 2000, 1024, 1000),
    ]


def test_tile_not_larger_than_overlap_is_an_error(tiny_model):
    with pytest.raises(ValueError, match=r"tile \(200\) must be larger than overlap \(200\)"):
        check_tiling(200, 200)
    with pytest.raises(ValueError, match=r"tile \(128\) must be larger than overlap \(300\)"):
        predict(np.zeros((64, 64, 3), np.uint8), tiny_model, tile=128, overlap=300, progress=False)
    with pytest.raises(ValueError, match="overlap must be an integer >= 0"):
        tile_windows(100, 100, 64, -1)
    with pytest.raises(ValueError, match="batch must be"):
        predict(np.zeros((64, 64, 3), np.uint8), tiny_model, tile=64, overlap=0, batch=0, progress=False)


# ------------------------------------------------------------------------------------------------ mapping back
def test_window_to_scene_is_exact():
    boxes = torch.tensor([[10.25, 20.5, 30.0, 40.0, 0.3], [0.0, 1023.75, 5.0, 6.0, -1.2]], dtype=torch.float64)
    out = window_to_scene(boxes, Window(824, 776, 1024, 1024, 1.0, 1024, 1024))
    assert torch.equal(
        out, torch.tensor([[834.25, 796.5, 30.0, 40.0, 0.3], [824.0, 1799.75, 5.0, 6.0, -1.2]], dtype=torch.float64)
    )
    # a window of 200x100 scene px read at scale 0.5 (100x50 network px): centres / 0.5 + offset, sizes / 0.5
    out = window_to_scene(torch.tensor([[10.0, 20.0, 30.0, 40.0, 0.3]]), Window(100, 50, 200, 100, 0.5, 100, 50))
    assert torch.equal(out, torch.tensor([[120.0, 90.0, 60.0, 80.0, 0.3]]))


def test_object_cut_by_tile_border_is_reported_once():
    # windows [0, 1024) and [824, 1848). A: 100 px wide, cut at x=1024 leaving 34 px in window 0 (IoU 0.34 with
    # the whole box: NMS removes it). B: cut leaving a 6 px sliver (IoU 0.06 < 0.1: only the border rule
    # removes it). C: inside the overlap, seen whole by both windows (IoU 1).
    rects = [(990, 100, 1090, 160), (1018, 300, 1118, 360), (850, 500, 950, 560)]
    backend = BlobBackend()
    dets = predict(blob_scene(1848, 1024, rects), backend, tile=1024, overlap=200, batch=8, progress=False)
    assert dets.info.tiles == 2 and dets.info.raw_detections == 6 and backend.calls == [2]
    expected = {(1040.0, 130.0, 100.0, 60.0, 0.0), (1068.0, 330.0, 100.0, 60.0, 0.0), (900.0, 530.0, 100.0, 60.0, 0.0)}
    assert {tuple(b) for b in dets.boxes.tolist()} == expected
    assert dets.class_names == ["blob"] and dets.labels.tolist() == [0, 0, 0]


def test_merge_border_rule_known_answer():
    # the same situation as above, by hand: the sliver of B survives NMS and is removed by the border rule
    boxes = torch.tensor([[1021.0, 330.0, 6.0, 60.0, 0.0], [1068.0, 330.0, 100.0, 60.0, 0.0]], dtype=torch.float64)
    scores, labels, wids = torch.tensor([0.036, 0.6]), torch.tensor([0, 0]), torch.tensor([0, 1])
    w0, w1 = Window(0, 0, 1024, 1024, 1.0, 1024, 1024), Window(824, 0, 1024, 1024, 1.0, 1024, 1024)
    cut = torch.cat([touches_inner_border(boxes[:1], w0, 1848, 1024), touches_inner_border(boxes[1:], w1, 1848, 1024)])
    assert cut.tolist() == [True, False]
    assert merge_detections(boxes, scores, labels, 0.1).tolist() == [1, 0]  # NMS alone keeps both
    assert merge_detections(boxes, scores, labels, 0.1, cut, wids).tolist() == [1]
    # another class is never suppressed
    assert merge_detections(boxes, scores, torch.tensor([1, 0]), 0.1, cut, wids).tolist() == [1, 0]


# ------------------------------------------------------------------------------------------------ predict
def test_single_tile_scene_equals_model_predict(tiny_model):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (128, 160, 3), dtype=np.uint8)
    dets = predict(img, tiny_model, tile=160, overlap=32, score_thr=0.3, progress=False)
    x = (
        torch.from_numpy(img).permute(2, 0, 1).float()[None] - torch.tensor(IMAGENET_MEAN)[:, None, None]
    ) / torch.tensor(IMAGENET_STD)[:, None, None]
    ref = tiny_model.predict(x, score_thr=0.3, normalized=True)[0]  # pre-processed by hand: the same detections
    raw = tiny_model.predict(torch.from_numpy(img).permute(2, 0, 1)[None], score_thr=0.3)[0]
    torch.testing.assert_close(raw.boxes, ref.boxes, rtol=0, atol=0)
    assert dets.info.tiles == 1 and len(ref) > 5
    assert len(dets) == len(ref)
    torch.testing.assert_close(dets.boxes, ref.boxes, atol=1e-4, rtol=1e-6)
    torch.testing.assert_close(dets.scores, ref.scores)
    assert torch.equal(dets.labels, ref.labels) and dets.class_names == ["plane", "ship"]


def test_predict_multi_scale_batches_and_info(tiny_model):
    img = np.random.default_rng(1).integers(0, 256, (200, 300, 3), dtype=np.uint8)
    dets = predict(img, tiny_model, tile=128, overlap=32, scales=(1.0, 0.5), batch=4, score_thr=0.3, progress=False)
    # scale 1: x starts 0, 96, 172; y starts 0, 72 -> 6 windows; scale 0.5: 256-px windows -> x 0, 44; y 0 -> 2
    assert dets.info.tiles == 8 and dets.info.scales == (1.0, 0.5)
    assert len(dets) > 0 and dets.boxes.dtype == torch.float32
    assert (dets.scores[:-1] >= dets.scores[1:]).all()
    assert dets.info.ms_per_tile > 0 and dets.info.total_s >= dets.info.infer_s
    assert "8 tiles (128 px, overlap 32)" in dets.info.summary()


# ------------------------------------------------------------------------------------------------ bad input
def test_bad_images_raise_naming_the_cause(tmp_path, tiny_model):
    run = lambda image: predict(image, tiny_model, tile=64, overlap=0, progress=False)  # noqa: E731
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    with pytest.raises(ValueError, match="corrupt.png: cannot decode"):
        run(corrupt)
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty.jpg: cannot decode the image: empty file"):
        run(empty)
    gif = tmp_path / "scene.gif"
    gif.write_bytes(b"GIF89a")
    with pytest.raises(ValueError, match=r"unsupported format '\.gif'"):
        run(gif)
    with pytest.raises(FileNotFoundError, match="missing.png"):
        run(tmp_path / "missing.png")
    with pytest.raises(ValueError, match=r"zero-size image \(0 x 5\)"):
        run(np.zeros((5, 0, 3), np.uint8))
    deep = tmp_path / "deep.png"
    cv2.imwrite(str(deep), np.full((8, 8), 4000, np.uint16))
    with pytest.raises(ValueError, match="16-bit uint16 image"):
        run(deep)


def test_model_backend_mismatch(tmp_path, tiny_model):
    with pytest.raises(ValueError, match="model/backend mismatch: backend 'onnx' needs a .onnx file, got an nn.Module"):
        load_backend(tiny_model, "onnx")
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"x")
    with pytest.raises(ValueError, match="backend 'torch' reads .pt/.pth files, got m.onnx \\(use backend='onnx'\\)"):
        load_backend(onnx, "torch")
    with pytest.raises(ValueError, match="backend must be one of"):
        load_backend(tiny_model, "tflite")


# ------------------------------------------------------------------------------------------------ GeoTIFF + CLI
def test_predict_geotiff_reads_windows_and_georeferences(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    img = blob_scene(600, 400, [(290, 100, 340, 130)])
    keys = (1, 1, 0, 2, 1025, 0, 1, 1, 3072, 0, 1, 32633)
    path = tmp_path / "scene.tif"
    tifffile.imwrite(
        path,
        img,
        tile=(128, 128),
        photometric="rgb",
        extratags=[
            (33550, "d", 3, (0.5, 0.5, 0.0), True),
            (33922, "d", 6, (0, 0, 0, 500000.0, 4000000.0, 0), True),
            (34735, "H", len(keys), keys, True),
        ],
    )
    dets = predict(path, BlobBackend(), tile=256, overlap=64, progress=False)
    # rasterio reads GeoTIFFs when it is installed (the geo extra), tifffile otherwise: both by windows
    assert dets.info.reader in ("tifffile-windows", "rasterio") and dets.info.georef.epsg == 32633
    assert dets.boxes.tolist() == [[315.0, 115.0, 50.0, 30.0, 0.0]]
    # corner (290, 100) px -> map (500000 + 290 * 0.5, 4000000 - 100 * 0.5) in UTM 33N
    np.testing.assert_allclose(dets.info.georef.pixel_to_map(np.array([290.0, 100.0])), [500145.0, 3999950.0])


def test_cli_writes_all_outputs(tmp_path, tiny_model, capsys, config):
    ckpt = save_checkpoint(tmp_path / "tiny.pt", tiny_model, config)
    scene = tmp_path / "scene one.png"
    cv2.imwrite(str(scene), np.random.default_rng(2).integers(0, 256, (96, 160, 3), dtype=np.uint8))
    out = tmp_path / "out"
    args = ["--model", str(ckpt), "--output", str(out), "--tile", "96", "--overlap", "32", "--score-thr", "0.3"]
    rc = cli([str(scene), *args, "--quiet"])
    assert rc == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "Task1_plane.txt",
        "Task1_ship.txt",
        "scene_one.json",
        "scene_one.pixels.geojson",
        "scene_one.png",
    ]
    n = len(io.read_json(out / "scene_one.json"))
    lines = [ln for c in ("plane", "ship") for ln in (out / f"Task1_{c}.txt").read_text().splitlines()]
    assert n > 0 and len(lines) == n and all(ln.startswith("scene_one 0.") and len(ln.split()) == 10 for ln in lines)
    assert cv2.imread(str(out / "scene_one.png")).shape == (96, 160, 3)
    printed = capsys.readouterr()
    assert f"{n} detections" in printed.out and "image id 'scene_one'" in printed.err
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg")
    assert cli([str(bad), "--model", str(ckpt), "--output", str(out), "--quiet"]) == 2
    assert "bad.jpg: cannot decode" in capsys.readouterr().err
    assert cli([str(scene), "--model", str(tmp_path / "nope.pt"), "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert "model not found" in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_import_rdet_does_not_import_gradio():
    import subprocess

    code = "import sys, rdet; rdet.predict; import rdet.inference.io; assert 'gradio' not in sys.modules, 'gradio'"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("nms", ["none", "onnx"])
def test_onnx_backend_matches_torch(tmp_path, tiny_model, nms):
    """The exported graph gives predict's detections (one selection, rdet.models.selection): the merged scene
    detections of the ONNX Runtime backend equal the PyTorch backend's, all of them, in order."""
    pytest.importorskip("onnxruntime")
    export_onnx = pytest.importorskip("rdet.export.onnx_export").export_onnx
    path = export_onnx(tiny_model, tmp_path / "tiny.onnx", nms=nms, imgsz=128, score_threshold=0.3)
    img = np.random.default_rng(1).integers(0, 256, (200, 300, 3), dtype=np.uint8)
    ref = predict(img, tiny_model, tile=128, overlap=32, score_thr=0.3, progress=False)
    dets = predict(img, path, backend="onnx", tile=128, overlap=32, score_thr=0.3, progress=False)
    assert dets.info.backend == "onnx" and dets.info.tiles == 6 and dets.class_names == ref.class_names
    assert len(ref) > 20 and dets.labels.tolist() == ref.labels.tolist()
    torch.testing.assert_close(dets.scores, ref.scores, atol=1e-5, rtol=0)
    torch.testing.assert_close(dets.boxes, ref.boxes, atol=1e-3, rtol=0)
    with pytest.raises(ValueError, match="tiles of 160x160 do not fit the model's fixed input 128x128"):
        predict(np.zeros((300, 300, 3), np.uint8), path, backend="onnx", tile=160, overlap=32, progress=False)


def test_rdet_predict_pt_and_onnx_agree_on_the_bundled_scene(tmp_path, tiny_model, config):
    """``rdet predict`` on the bundled 1616 x 1565 DOTA scene, tiled (512 px, overlap 100): the .pt checkpoint and
    its ONNX export (RotatedNMS through ONNX Runtime's custom op) write the same detections."""
    pytest.importorskip("onnxruntime_extensions")
    from rdet.export.onnx_export import export_onnx
    from rdet.inference.outputs import read_json
    from rdet.resources import samples_dir

    scene = samples_dir() / "scenes" / "dota_demo.jpg"
    ckpt = save_checkpoint(tmp_path / "tiny.pt", tiny_model, config)
    onnx_path = export_onnx(ckpt, tmp_path / "tiny.onnx", nms="plugin", imgsz=512, score_threshold=0.3)
    got = {}
    for kind, model in (("pt", ckpt), ("onnx", onnx_path)):
        out = tmp_path / kind
        args = [str(scene), "--model", str(model), "--output", str(out), "--tile", "512", "--overlap", "100"]
        assert cli([*args, "--score-thr", "0.3", "--quiet"]) == 0
        got[kind] = read_json(out / "dota_demo.json")
    pt, ox = got["pt"], got["onnx"]
    assert len(pt) > 100 and len(ox) == len(pt)
    # A random model scores uniform areas of the scene alike: equal scores (to float rounding) may swap places
    # in the list, so each detection is matched to the other backend's nearest one, one to one.
    dist = torch.cdist(pt.boxes[:, :2], ox.boxes[:, :2]) + 1e6 * (pt.labels[:, None] != ox.labels[None])
    match = dist.argmin(1)
    assert sorted(match.tolist()) == list(range(len(pt)))
    assert ox.labels[match].tolist() == pt.labels.tolist()
    torch.testing.assert_close(ox.scores[match], pt.scores, atol=1e-5, rtol=0)
    torch.testing.assert_close(ox.boxes[match], pt.boxes, atol=2e-3, rtol=0)
