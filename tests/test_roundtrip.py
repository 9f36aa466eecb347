"""Round trips of the user's path (issue 19.1, 19.5): what ``rdet predict`` and ``rdet eval --save-detections`` write,
``rdet eval`` reads without extra flags; GeoJSON is RFC 7946 (lon/lat or a marked pixel file, never NaN); the tiled
progress shows the time per tile done."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

from rdet.checkpoint import save_checkpoint
from rdet.commands.eval import cli as eval_cli
from rdet.commands.predict import cli as predict_cli
from rdet.data.synthetic import make_synthetic_dataset
from rdet.detections import Detections
from rdet.eval import evaluate_task1
from rdet.inference import io, outputs
from rdet.inference import predict as _predict_fn  # noqa: F401 - the function; the module is below
from rdet.models.build import build_model

predict_module = sys.modules["rdet.inference.predict"]


@pytest.fixture
def tiny(tiny_config):
    """``tiny(classes=('plane', 'ship'), size=64, data=None) -> (model, config)``: a random tiny model that detects."""
    return lambda classes=("plane", "ship"), size=64, data=None: _tiny(tiny_config, classes, size, data)


def _tiny(tiny_config, classes, size, data):
    config = tiny_config(classes, nms_pre=100, max_per_img=50)
    config.model.test.score_thr = 0.3
    if data is not None:
        config.data.val_images, config.data.val_labels = str(data / "images"), str(data / "labelTxt")
        config.data.train_images, config.data.train_labels = config.data.val_images, config.data.val_labels
        config.data.img_size = (size, size)
        config.train.workers = 0
    torch.manual_seed(0)
    model = build_model(config).eval()
    torch.nn.init.zeros_(model.bbox_head.retina_cls.bias)  # scores around 0.5: a random model detects
    return model, config


def _table(capsys) -> str:
    out = capsys.readouterr().out
    return out[out.index("DOTA Task1 AP") :]


# ------------------------------------------------------------------------------------------ predict -> eval
def test_predict_outputs_feed_eval_and_merge_per_image_id(tmp_path, capsys, tiny):
    data = tmp_path / "data"
    make_synthetic_dataset(data, 3, size=96, seed=4, class_ids=(0, 1))  # planes and ships
    model, config = tiny()
    ckpt = save_checkpoint(tmp_path / "tiny.pt", model, config)
    out = tmp_path / "results"
    common = ["--model", str(ckpt), "--output", str(out), "--tile", "64", "--overlap", "16", "--quiet"]
    assert predict_cli([str(data / "images"), *common]) == 0  # a folder
    task1 = {c: (out / f"Task1_{c}.txt").read_text() for c in ("plane", "ship")}
    lines = [ln for text in task1.values() for ln in text.splitlines()]
    assert lines and all(len(ln.split()) == 10 for ln in lines)  # the official 10 fields
    assert {ln.split()[0] for ln in lines} <= {"syn_00000", "syn_00001", "syn_00002"}
    per_image = {p.stem: len(io.read_json(p)) for p in sorted(out.glob("*.json"))}
    assert sum(per_image.values()) == len(lines)

    # predicting one image again replaces its lines and keeps the others'
    assert predict_cli([str(data / "images/syn_00001.png"), *common]) == 0
    assert {c: (out / f"Task1_{c}.txt").read_text() for c in task1} == task1
    capsys.readouterr()

    # eval reads the folder of Task1 files and the JSON files as written, and agrees with itself
    labels = ["--labels", str(data / "labelTxt")]
    assert eval_cli(["--results", str(out), *labels]) == 0
    from_task1 = _table(capsys)
    assert eval_cli(["--detections", str(out), *labels]) == 0
    from_json = _table(capsys)
    assert from_task1 == from_json and "| plane |" in from_task1
    one = evaluate_task1(out, data / "labelTxt")
    assert set(one["per_class"]) == {"plane", "ship"}
    # a single predict JSON file is a detections file too
    assert eval_cli(["--detections", str(out / "syn_00000.json"), *labels]) == 0
    capsys.readouterr()
    # the pixel budget reaches the reader: refused from the header, one line naming the file and the flag
    assert predict_cli([str(data / "images/syn_00000.png"), *common, "--max-pixels", "1000"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "syn_00000.png: 96 x 96 = 9,216 pixels exceeds" in err[0] and "--max-pixels" in err[0]


def test_eval_reads_its_own_saved_detections_without_classes(tmp_path, capsys, tiny):
    data = tmp_path / "val"
    make_synthetic_dataset(data, 4, size=64, seed=2, class_ids=(0, 1))
    model, config = tiny(data=data)
    ckpt = save_checkpoint(tmp_path / "tiny.pt", model, config)
    saved = tmp_path / "dets.json"
    assert eval_cli(["--model", str(ckpt), "--save-detections", str(saved), "--output", str(tmp_path / "a.json")]) == 0
    direct = json.loads((tmp_path / "a.json").read_text())
    capsys.readouterr()
    args = ["--detections", str(saved), "--labels", str(data / "labelTxt"), "--output", str(tmp_path / "b.json")]
    assert eval_cli(args) == 0
    again = json.loads((tmp_path / "b.json").read_text())
    assert again["mAP"] == direct["mAP"] and again["classes"]["plane"] == direct["classes"]["plane"]
    # detections of a class that is not evaluated are left out with a note, not an error
    assert eval_cli([*args[:4], "--classes", "plane"]) == 0
    assert "detections of classes not evaluated were left out: ship" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ GeoJSON
def _dets(boxes, scores=None):
    boxes = torch.tensor(boxes, dtype=torch.float64).reshape(-1, 5)
    scores = torch.tensor(scores if scores is not None else [0.9] * len(boxes), dtype=torch.float64)
    return Detections(boxes, scores, torch.zeros(len(boxes), dtype=torch.long), ["plane"])


def test_geojson_wgs84_with_pyproj(tmp_path):
    pytest.importorskip("pyproj")
    # UTM 33N, 0.5 m pixels, top-left corner at (500000 E, 4000000 N): x = 0 is the central meridian, 15 deg E
    geo = io.GeoRef((500000.0, 0.5, 0.0, 4000000.0, 0.0, -0.5), 32633)
    dets = _dets([[10.0, 20.0, 20.0, 8.0, 0.0]])  # corners x 0..20, y 16..24
    path, note = io.write_scene_geojson(tmp_path, "scene", dets, geo)
    assert path.name == "scene.geojson" and note == ""
    doc = json.loads(path.read_text())
    assert "crs" not in doc and doc["rdet"]["coordinate_space"] == "wgs84" and doc["rdet"]["source_crs"] == "EPSG:32633"
    ring = np.array(doc["features"][0]["geometry"]["coordinates"][0])
    assert ring.shape == (5, 2) and (ring[0] == ring[-1]).all()
    on_meridian = ring[np.isclose(ring[:, 0], 15.0, rtol=0, atol=1e-9)]
    assert len(on_meridian) == 3  # the x = 0 corners (twice for the closing point) lie exactly on 15 deg E
    assert ((ring[:, 0] >= 15.0) & (ring[:, 0] < 15.001) & (ring[:, 1] > 36.1) & (ring[:, 1] < 36.2)).all()
    x, y = ring[:-1, 0], ring[:-1, 1]
    assert np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y) > 0  # counter-clockwise (RFC 7946 right-hand rule)
    back = io.read_geojson(path)
    np.testing.assert_allclose(back.boxes.numpy(), dets.boxes.numpy(), atol=1e-3)


def test_geojson_without_pyproj_never_mislabels(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyproj", None)  # import pyproj -> ImportError
    dets = _dets([[10.0, 20.0, 20.0, 8.0, 0.0]])
    # a scene in EPSG:4326 needs no transform: map coordinates are lon/lat
    geo4326 = io.GeoRef((10.0, 0.001, 0.0, 50.0, 0.0, -0.001), 4326)
    path, note = io.write_scene_geojson(tmp_path, "a", dets, geo4326)
    ring = json.loads(path.read_text())["features"][0]["geometry"]["coordinates"][0]
    assert path.name == "a.geojson" and note == "" and [10.0, 49.976] in ring and [10.02, 49.984] in ring
    # a projected scene: pixel coordinates in a .pixels.geojson and a note saying why, never UTM labelled lon/lat
    utm = io.GeoRef((500000.0, 0.5, 0.0, 4000000.0, 0.0, -0.5), 32633)
    path, note = io.write_scene_geojson(tmp_path, "b", dets, utm)
    assert path.name == "b.pixels.geojson" and "pyproj" in note and "EPSG:32633" in note
    doc = json.loads(path.read_text())
    assert (
        doc["rdet"]["coordinate_space"] == "pixel" and [0.0, 16.0] in doc["features"][0]["geometry"]["coordinates"][0]
    )
    assert not (tmp_path / "b.geojson").exists()
    with pytest.raises(ValueError, match="needs pyproj"):
        io.to_geojson(dets, utm, "b")
    with pytest.warns(UserWarning, match="pixel coordinates: .*needs pyproj"):  # a caller-chosen name: marked, warned
        doc = json.loads(io.write_geojson(tmp_path / "c.geojson", dets, utm).read_text())
    assert doc["rdet"]["coordinate_space"] == "pixel"


def test_eval_is_a_leaf_layer():
    code = "import sys, rdet.eval; bad = [m for m in sys.modules if m.startswith(('rdet.engine', 'rdet.models'))]; "
    code += "assert not bad, bad"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_no_writer_emits_nan(tmp_path):
    dets = _dets([[10.0, 20.0, 20.0, 8.0, 0.0], [float("nan"), 1.0, 2.0, 2.0, 0.0]], [0.9, 0.8])
    for write in (
        lambda: io.write_json(tmp_path / "x.json", dets),
        lambda: io.write_geojson(tmp_path / "x.geojson", dets),
        lambda: outputs.update_task1_dir(tmp_path / "t", {"x": dets}),
        lambda: io.write_task1_txt(tmp_path / "x.txt", dets, "x"),
    ):
        with pytest.raises(ValueError, match="detection 1 has a non-finite box"):
            write()
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == []


class NaNBackend:
    name, device, class_names, score_thr, iou_thr = "torch", "cpu", ["plane"], None, 0.1

    def with_thresholds(self, score_thr, iou_thr):
        return self

    def __call__(self, tiles):
        boxes = torch.tensor([[8.0, 8.0, 6.0, 4.0, 0.0], [float("nan"), 8.0, 6.0, 4.0, 0.0]])
        return [(boxes, torch.tensor([0.9, 0.8]), torch.zeros(2, dtype=torch.long)) for _ in tiles]


def test_predict_drops_non_finite_detections_loudly():
    with pytest.warns(UserWarning, match="NaN or infinite"):
        dets = predict_module.predict(np.zeros((32, 32, 3), np.uint8), NaNBackend(), tile=32, overlap=0, progress=False)
    assert len(dets) == 1 and torch.isfinite(dets.boxes).all()


# ------------------------------------------------------------------------------------------ progress
class SleepBackend:
    """Advances a fake clock by 0.1 s per tile, so every tile takes exactly 100 ms of backend time."""

    name, device, class_names, score_thr, iou_thr = "torch", "cpu", ["plane"], None, 0.1

    def __init__(self, clock):
        self.clock = clock

    def with_thresholds(self, score_thr, iou_thr):
        return self

    def __call__(self, tiles):
        self.clock.now += 0.1 * len(tiles)
        return [(torch.zeros(0, 5), torch.zeros(0), torch.zeros(0, dtype=torch.long)) for _ in tiles]


def test_progress_ms_per_tile_divides_by_the_tiles_done(monkeypatch):
    clock = type("Clock", (), {"now": 0.0})()
    monkeypatch.setattr(predict_module.time, "perf_counter", lambda: clock.now)
    shown = []

    class Recorder:
        def __init__(self, *a, **k):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            pass

        def update(self, n=1):
            pass

        def set_postfix(self, values):
            shown.append(values["ms/tile"])

    monkeypatch.setattr(predict_module, "Progress", Recorder)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dets = predict_module.predict(np.zeros((64, 64, 3), np.uint8), SleepBackend(clock), 32, 0, batch=1)
    assert dets.info.tiles == 4 and shown == [100, 100, 100, 100]  # was 25, 50, 75, 100 (over all 4 tiles)
