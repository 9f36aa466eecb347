"""The Gradio demo (rdet.serve): its engine called directly, and end to end in headless Chromium (Playwright).

There is no trained model in the repository, and training one that detects real objects takes minutes on a CPU,
so these tests use a model whose weights compute a known function (:func:`yellow_bus_model`): the real Rotated
RetinaNet architecture, saved and loaded as a checkpoint, with weights set so that class ``large-vehicle`` fires on
yellow areas of about bus size. The bundled scene is a depot of yellow school buses, so the detections can be
checked against the pixels: every detection must sit on a yellow bus. Its scores stay below 0.3, so a first click
with a fixed default threshold of 0.3 would find nothing; the model's own test threshold (0.05) finds them.

Needs ``pip install gradio`` (skipped otherwise). The browser test also needs Playwright (the ``dev`` extra) and
Debian's Chromium at /usr/bin/chromium (``apt-get install -y chromium``; never a downloaded browser); it is
skipped, saying so, without them.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
import zipfile
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

gr = pytest.importorskip("gradio")
pytestmark = pytest.mark.filterwarnings(  # gradio's queue calls pandas APIs that pandas 3 deprecates
    "ignore:.*no_silent_downcasting", "ignore:The copy keyword is deprecated"
)

from local_http import free_port, wait_for_http  # noqa: E402

from rdet.checkpoint import save_checkpoint  # noqa: E402
from rdet.inference.predict import predict  # noqa: E402
from rdet.models.build import build_model  # noqa: E402
from rdet.serve.app import build_app, launch, user_message  # noqa: E402
from rdet.serve.budget import Budget  # noqa: E402
from rdet.serve.demo import Demo, RequestError, bundled_samples, default_overlap  # noqa: E402

SAMPLE = "dota_demo.jpg"
CLASSES = ("large-vehicle", "small-vehicle")
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def yellow_bus_model(tiny_config, img_size: int = 512):
    """A Rotated RetinaNet (R-18, 32-channel FPN/head) whose weights make known detections: yellow things.

    Set through the state dict (MMRotate's key names, the stable interface of the architecture):
    the stem's first channel is ``relu((R + G) / 2 - B - 40) / 100`` averaged over its 7x7 window (yellow: R and G
    high, B low; grey asphalt, white cars, roofs and grass stay near 0); every residual branch is switched off (its
    last BatchNorm scaled by 0) and each downsampling shortcut passes that channel on, so C3 is the yellowness map
    at stride 8; the FPN and the head's tower pass it to P3 only (P4-P7 are 0); ``retina_cls`` turns it into the
    ``large-vehicle`` logit ``2.7 * yellowness - 3.9`` (a bus scores about 0.05-0.25; 9 anchors get slightly
    different weights so no two scores tie); ``small-vehicle`` never fires; ``retina_reg`` is 0, so the boxes are
    the anchors (horizontal, 32-50 px) centred on yellow areas. ``test.score_thr`` is the default 0.05.
    """
    cfg = tiny_config(CLASSES, nms_pre=200, max_per_img=100)  # the conftest.py fixture
    cfg.data.img_size = (img_size, img_size)
    model = build_model(cfg).eval()
    mean, std = model.pixel_mean.flatten().tolist(), model.pixel_std.flatten().tolist()  # the model normalises
    sd = model.state_dict()
    with torch.no_grad():
        for key, v in sd.items():
            name = key.rsplit(".", 1)[1]
            if name == "num_batches_tracked" or not key.startswith(("backbone.", "neck.", "bbox_head.")):
                continue
            if key.startswith("backbone.") and ("bn" in key or "downsample.1" in key):
                v.fill_({"weight": 1.0, "bias": 0.0, "running_mean": 0.0, "running_var": 1.0}[name])
                if ".bn2." in key and name in ("weight", "bias"):
                    v.zero_()  # the residual branch adds nothing: each block passes its input on
            else:
                v.zero_()
        k = 1 / 100
        for c, coef in enumerate((0.5, 0.5, -1.0)):  # on normalised RGB: undo the std, average over 7x7
            sd["backbone.conv1.weight"][0, c] = coef * std[c] * k / 49
        sd["backbone.bn1.bias"][0] = k * (0.5 * mean[0] + 0.5 * mean[1] - mean[2] - 40)
        for layer in (2, 3, 4):
            sd[f"backbone.layer{layer}.0.downsample.0.weight"][0, 0] = 1.0
        sd["neck.lateral_convs.0.conv.weight"][0, 0] = 1.0
        sd["neck.fpn_convs.0.conv.weight"][0, 0, 1, 1] = 1.0
        sd["bbox_head.cls_convs.0.conv.weight"][0, 0, 1, 1] = 1.0
        sd["bbox_head.retina_cls.bias"].fill_(-12.0)
        for a in range(model.num_anchors):
            sd["bbox_head.retina_cls.weight"][a * len(CLASSES), 0, 1, 1] = 2.7 * (1 + 0.01 * a)
            sd["bbox_head.retina_cls.bias"][a * len(CLASSES)] = -3.9
    model.load_state_dict(sd)
    return model, cfg


def yellow_mask(rgb: np.ndarray) -> np.ndarray:
    """Bool ``[H, W]``: the yellow paint of the buses (HSV hue 18-35, saturated and bright)."""
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    return cv2.inRange(hsv, (18, 60, 140), (35, 255, 255)) > 0


def on_yellow(dets, rgb: np.ndarray) -> int:
    """How many detection centres lie within 4 px of a yellow pixel."""
    near = cv2.dilate(yellow_mask(rgb).astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
    c = dets.boxes[:, :2].double().floor().long()
    x = c[:, 0].clamp(0, rgb.shape[1] - 1)
    y = c[:, 1].clamp(0, rgb.shape[0] - 1)
    return int(near[y.numpy(), x.numpy()].sum())


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory, tiny_config) -> Path:
    model, cfg = yellow_bus_model(tiny_config)
    return save_checkpoint(tmp_path_factory.mktemp("serve") / "yellow.pt", model, cfg)


@pytest.fixture(scope="module")
def demo(ckpt):
    d = Demo(ckpt, budget=Budget(max_upload_mb=5))
    yield d
    d.close()


@pytest.fixture(scope="module")
def scene_rgb() -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(bundled_samples()[SAMPLE])), cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def crop(scene_rgb, tmp_path_factory) -> Path:
    """900 x 700 px of the depot (four rows of buses) as an upload: 4 tiles of 512 px, fast."""
    path = tmp_path_factory.mktemp("upload") / "depot crop.png"
    cv2.imwrite(str(path), cv2.cvtColor(scene_rgb[780:1480, 150:1050], cv2.COLOR_RGB2BGR))
    return path


@pytest.fixture(scope="module")
def first(demo):
    """The first request with the page's defaults on the bundled scene (one model run, shared)."""
    d = demo.defaults
    runs = demo.inference_runs
    dets, state, ran = demo.detect(None, SAMPLE, d.score_thr, d.iou_thr, d.tile, d.overlap, d.scale)
    assert ran and demo.inference_runs == runs + 1
    return dets, state


# ---------------------------------------------------------------------------------------------- the engine
def test_samples_are_bundled():
    samples = bundled_samples()
    assert SAMPLE in samples and all(p.is_file() for p in samples.values())


def test_defaults_come_from_the_checkpoint(demo):
    d = demo.defaults
    assert (d.score_thr, d.iou_thr, d.tile, d.overlap, d.scale) == (0.05, 0.1, 512, 96, 1.0)
    assert d.class_names == CLASSES and demo.class_names == list(CLASSES)
    assert [default_overlap(t) for t in (1024, 512, 256)] == [200, 96, 48]


def test_first_request_with_defaults_finds_the_buses(first, scene_rgb):
    dets, state = first
    assert len(dets) >= 20, len(dets)
    assert on_yellow(dets, scene_rgb) == len(dets)  # every detection is on a yellow bus
    assert set(dets.counts()) == {"large-vehicle"}
    assert float(dets.scores.max()) < 0.3  # a fixed default of 0.3 would have shown "0 objects"
    assert state.cache_thr == 0.05 and state.info.tiles == 16 and state.image.shape == scene_rgb.shape


def test_refilter_equals_a_fresh_run_without_the_model(demo, crop):
    d = demo.defaults
    dets, state, ran = demo.detect(str(crop), None, d.score_thr, d.iou_thr, d.tile, d.overlap)
    assert ran and state.info.tiles == 4 and len(dets) >= 10
    runs, calls = demo.inference_runs, demo.backend_calls
    for thr in (0.05, 0.08, 0.12, 0.2):
        cached, state, ran = demo.refilter(state, thr)
        assert not ran
        assert (demo.inference_runs, demo.backend_calls) == (runs, calls)  # the model did not run
        fresh = predict(str(crop), demo.backend, d.tile, d.overlap, score_thr=thr, iou_thr=d.iou_thr, progress=False)
        assert len(fresh) > 0 or thr == 0.2
        assert torch.equal(cached.boxes, fresh.boxes)
        assert torch.equal(cached.scores, fresh.scores)
        assert torch.equal(cached.labels, fresh.labels)
    # the same settings again: the cache answers; a threshold below the cached one runs the model
    _, state, ran = demo.detect(str(crop), None, 0.3, d.iou_thr, d.tile, d.overlap, 1.0, state)
    assert not ran and demo.inference_runs == runs
    low, state, ran = demo.refilter(state, 0.03)
    assert ran and demo.inference_runs == runs + 1 and state.cache_thr == 0.03 and len(low) >= len(dets)
    # a new tile size (or overlap, scale, NMS IoU, scene) runs the model
    _, _, ran = demo.detect(str(crop), None, 0.05, d.iou_thr, 256, 48, 1.0, state)
    assert ran and demo.inference_runs == runs + 2


def test_onnx_model_defaults_to_its_input_size(tmp_path, tiny_config):
    pytest.importorskip("onnxruntime")
    from rdet.export.onnx_export import export_onnx

    model, _ = yellow_bus_model(tiny_config, 256)
    path = export_onnx(model, tmp_path / "yellow256.onnx", nms="none", imgsz=256)
    d = Demo(path, samples={})
    try:
        assert (d.defaults.tile, d.defaults.tile_max, d.defaults.overlap) == (256, 256, 48)
        assert d.defaults.score_thr == d.defaults.score_min == 0.05 and d.defaults.class_names == CLASSES
        with pytest.raises(RequestError, match=r"tile 512 is larger than this model's input \(256 px\)"):
            d.detect(str(bundled_samples()[SAMPLE]), None, 0.05, 0.1, 512, 96)
    finally:
        d.close()


def test_bad_requests_are_refused_with_page_messages(demo, tmp_path, monkeypatch):
    def refused(match, *args):
        with pytest.raises((ValueError, FileNotFoundError)) as e:
            demo.detect(*args)
        message = user_message(e.value, {})
        assert re.search(match, message), message
        assert str(tmp_path) not in message and "--" not in message and "`" not in message, message
        return message

    refused("upload a scene or pick a sample first", None, None, 0.05, 0.1, 512, 96)
    refused(r"unknown sample 'nope.png'", None, "nope.png", 0.05, 0.1, 512, 96)
    refused(r"tile \(256\) must be larger than overlap \(256\)", None, SAMPLE, 0.05, 0.1, 256, 256)
    refused(r"score threshold must lie in \[0, 1\]", None, SAMPLE, 1.5, 0.1, 512, 96)
    big = tmp_path / "big.png"
    big.write_bytes(b"\0" * (6 * 2**20))
    refused(r"^big.png is 6.0 MB; this server accepts uploads up to 5 MB$", str(big), None, 0.05, 0.1, 512, 96)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    refused(r"^bad.png: cannot decode", str(bad), None, 0.05, 0.1, 512, 96)
    deep = tmp_path / "deep.png"
    cv2.imwrite(str(deep), np.full((64, 64, 3), 40000, np.uint16))
    refused(r"^deep.png: 16-bit", str(deep), None, 0.05, 0.1, 512, 96)
    # budgets: pixels from the header, tiles counted before the model runs, model time checked between batches
    scene = str(bundled_samples()[SAMPLE])
    runs = demo.inference_runs
    monkeypatch.setattr(demo, "budget", Budget(max_pixels=1_000_000))
    refused(r"1616 x 1565 .*pixel budget of 1,000,000", scene, None, 0.05, 0.1, 512, 96)
    monkeypatch.setattr(demo, "budget", Budget(max_tiles=4))
    refused(
        r"needs 16 tiles of 512 px at scale 1; this server runs at most 4 per request", scene, None, 0.05, 0.1, 512, 96
    )
    monkeypatch.setattr(demo, "budget", Budget(time_limit_s=0))
    monkeypatch.setattr(demo, "ms_per_tile", None)  # no estimate yet: the run starts and stops at the first batch
    refused(r"stopped after 0 s with 0 of 16 tiles done", scene, None, 0.05, 0.1, 512, 96)
    monkeypatch.setattr(demo, "budget", Budget(time_limit_s=10))
    monkeypatch.setattr(demo, "ms_per_tile", 1000.0)  # measured earlier on this server: 16 tiles need ~16 s
    refused(
        r"16 tiles would take about 16 s here \(1000 ms per tile\); this server allows 10 s",
        scene,
        None,
        0.05,
        0.1,
        512,
        96,
    )
    assert demo.inference_runs == runs


def png_bomb(path: Path, width: int, height: int) -> Path:
    """A valid grey PNG of ``width x height`` zero pixels, compressed row by row (30000 x 30000: ~0.9 MB on disk,
    900 MB decoded), as the decompression bomb of issue 18."""
    import struct

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    z, row, parts = zlib.compressobj(9), b"\0" * (width + 1), []
    for _ in range(height):
        parts.append(z.compress(row))
    parts.append(z.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b"")
    )
    return path


def test_decompression_bomb_is_refused_from_its_header(demo, tmp_path):
    import resource

    bomb = png_bomb(tmp_path / "bomb.png", 30000, 30000)
    assert bomb.stat().st_size < 5 * 2**20  # passes the upload limit
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB
    with pytest.raises(ValueError) as e:
        demo.detect(str(bomb), None, 0.05, 0.1, 512, 96)
    message = user_message(e.value, {})
    assert message.startswith("bomb.png: 30000 x 30000 = 900,000,000 pixels exceeds the pixel budget of 100,000,000")
    assert "--" not in message and "max_pixels" not in message and str(tmp_path) not in message
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak < 2**20  # < 1 GiB more: nothing decoded


def test_user_message_hides_paths_and_command_line_hints():
    e = ValueError(
        "/tmp/gradio/4f1c/bomb.png: 30000 x 30000 = 900,000,000 pixels exceeds the pixel budget of 100,000,000 "
        "(checked from the header, nothing was decoded); if the image is genuine, raise the budget with "
        "max_pixels=900000000 (CLI: --max-pixels 900000000)"
    )
    assert user_message(e) == (
        "bomb.png: 30000 x 30000 = 900,000,000 pixels exceeds the pixel budget of 100,000,000 "
        "(checked from the header, nothing was decoded);"
    ).rstrip(";")
    e = ValueError(
        "/srv/x/a.tif: 16-bit uint16 image; rdet reads 8-bit imagery (uint8). Convert it first, e.g. "
        "`gdal_translate -ot Byte -scale in.tif out.tif` or scale to 0-255 with numpy"
    )
    assert user_message(e) == "a.tif: 16-bit uint16 image; rdet reads 8-bit imagery (uint8)."
    e = ValueError(
        "/models/m.onnx: tiles of 600x600 do not fit the model's fixed input 512x512; use tile <= 512 "
        "or export with a larger --imgsz"
    )
    assert "/models" not in user_message(e) and "--imgsz" not in user_message(e)
    assert user_message(ValueError("C:\\data\\in\\x.png: bad"), {}) == "x.png: bad"


def test_server_temp_folder_is_swept_and_removed(ckpt, tmp_path, monkeypatch):
    before = {p.name for p in Path(tempfile.gettempdir()).glob("rdet_serve_*")}
    d = Demo(ckpt, samples={})
    try:
        mine = {p.name for p in Path(tempfile.gettempdir()).glob("rdet_serve_*")} - before
        assert mine == {d.workdir.name}
        first = d.output_dir()
        (first / "x.png").write_bytes(b"x")
        import rdet.serve.demo as demo_module

        monkeypatch.setattr(demo_module, "KEEP_OUTPUTS_S", -1.0)  # everything older than "now" goes
        second = d.output_dir()
        assert not first.exists() and second.is_dir() and second.parent == d.workdir
    finally:
        d.close()
    assert not d.workdir.exists()


def test_sigterm_stops_the_server_and_removes_its_temp_folder(ckpt, tmp_path):
    """``rdet serve`` stopped by SIGTERM (kill, systemd, docker stop) exits 0 and leaves no temporary folder (the
    default SIGTERM ended the process without its clean-up: the wheel test's server left one per run)."""
    import signal
    import subprocess
    import sys

    tmp = tmp_path / "tmp"
    tmp.mkdir()
    port = free_port()
    env = dict(os.environ, TMPDIR=str(tmp), GRADIO_ANALYTICS_ENABLED="False")
    cmd = [sys.executable, "-m", "rdet.cli", "serve", "--model", str(ckpt), "--port", str(port)]
    server = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        status = wait_for_http(f"http://127.0.0.1:{port}/", server, 120)
        assert status == 200, f"rdet serve did not answer: exit {server.poll()}"
        assert len(list(tmp.glob("rdet_serve_*"))) == 1  # its folder (sample thumbnails, downloads)
        server.send_signal(signal.SIGTERM)
        log = server.communicate(timeout=60)[0]
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate()
    assert server.returncode == 0, log[-2000:]
    assert "SIGTERM" in log and "Traceback" not in log, log[-2000:]
    assert list(tmp.glob("rdet_serve_*")) == []


def test_concurrent_requests_wait_in_the_queue_and_see_their_place(ckpt, scene_rgb, tmp_path, monkeypatch):
    """30 visitors at once (the fault campaign of issue 18 saw 13 of 30 refused with "Queue is full"): all are
    queued, one model run at a time, each told its place; none is refused, and every download is whole (the same
    result for all: the annotated picture once came back cut while another request rewrote it)."""
    from gradio_client import Client, handle_file

    # gradio_client stages each download in a new folder of the temp dir and leaves it there (120 per run)
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))

    small = tmp_path / "buses.png"  # one tile, so 30 requests stay quick
    cv2.imwrite(str(small), cv2.cvtColor(scene_rgb[1230:1400, 580:800], cv2.COLOR_RGB2BGR))
    app = build_app(ckpt, max_upload_mb=5)
    port = free_port()
    launch(app, port=port, max_upload_mb=5, block=False)
    try:
        assert app.server_name == "127.0.0.1" and app._queue.max_size == 64
        url = f"http://127.0.0.1:{port}/"
        visitors = [Client(url, verbose=False, httpx_kwargs={"timeout": 300}) for _ in range(30)]  # 30 sessions
        jobs = [c.submit(handle_file(str(small)), 0.05, 0.1, 512, 96, 1.0, [], api_name="/detect") for c in visitors]
        places = set()
        while not all(j.done() for j in jobs):
            places.update(j.status().rank for j in jobs if j.status().rank is not None)
            time.sleep(0.02)
        results = [j.result() for j in jobs]  # raises for a refused request
    finally:
        app.close()
        app.rdet_demo.close()
    assert len(results) == 30 and all("object" in r[1] and "buses.png" in r[1] for r in results), results[0][1]
    assert app.rdet_demo.inference_runs == 30
    assert max(places) >= 5, places  # the waiting visitors were told their place in the queue


# ---------------------------------------------------------------------------------------------- the browser
def _chromium():
    """Playwright's sync API and the system Chromium, or a skip saying how to enable the test."""
    try:
        from playwright import sync_api
    except ImportError:
        pytest.skip("browser test needs Playwright: pip install -e '.[dev]'")
    if not CHROMIUM.is_file():
        pytest.skip(
            "browser test needs Debian's Chromium at /usr/bin/chromium: run `make browser` once (apt-get install)"
        )
    return sync_api


def _download(page, selector: str, folder: Path) -> Path:
    with page.expect_download(timeout=30_000) as info:
        page.click(selector)
    target = folder / info.value.suggested_filename
    info.value.save_as(str(target))
    return target


def _table_rows(page) -> int:
    """Rows of the detections table (the grid counts its header row too; it renders only the visible rows)."""
    return int(page.locator("#table [role=grid]").get_attribute("aria-rowcount")) - 1


def _count(page) -> int:
    text = page.locator("#status").inner_text()
    return int(text.split("object")[0].split()[-1])


def test_end_to_end_in_headless_chromium(ckpt, scene_rgb, tmp_path, capfd):
    sync_api = _chromium()
    app = build_app(ckpt, max_upload_mb=5)
    demo = app.rdet_demo
    port = free_port()
    launch(app, port=port, max_upload_mb=5, block=False)
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    shots = Path(os.environ.get("RDET_SERVE_SCREENSHOTS") or tmp_path)  # set it to keep the screenshots
    shots.mkdir(parents=True, exist_ok=True)
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(f"http://127.0.0.1:{port}/")
            page.locator("#run").wait_for(timeout=60_000)
            # Detect sits beside the upload, above the fold
            box = page.locator("#run").bounding_box()
            assert box is not None and box["y"] + box["height"] < 400
            page.screenshot(path=str(shots / "1_start.png"))
            # a second visitor, waiting with a (bad) upload of their own
            other = browser.new_page(viewport={"width": 1400, "height": 900})
            other.goto(f"http://127.0.0.1:{port}/")
            other.set_input_files("#upload input[type=file]", str(bad))
            other.locator("#scene").get_by_text("broken.png").wait_for(timeout=60_000)
            # the first click, with the model's defaults: a sample thumbnail runs the detection
            page.locator("#samples img").first.click()
            page.get_by_text(re.compile(r"processing")).first.wait_for(timeout=60_000)
            # meanwhile the other visitor's request waits in the queue and is shown its place
            other.click("#run")
            other.get_by_text(re.compile(r"queue: 1/1")).first.wait_for(timeout=30_000)
            page.locator("#status").get_by_text("object").wait_for(timeout=240_000)
            n = _count(page)
            assert n >= 20 and demo.inference_runs == 1
            assert "above score 0.05" in page.locator("#status").inner_text()
            assert "large-vehicle" in page.locator("#legend").inner_text()
            assert _table_rows(page) == n
            page.screenshot(path=str(shots / "2_first_click.png"), full_page=True)
            other.locator("#status").get_by_text("broken.png: cannot decode").wait_for(timeout=60_000)
            other.close()
            # the downloads are valid files
            png = cv2.imread(str(_download(page, "#dl_png", tmp_path)))
            assert png is not None and png.shape == scene_rgb.shape
            changed = np.abs(png.astype(int) - scene_rgb[..., ::-1].astype(int)).max(axis=2) > 60
            assert changed.sum() > 500  # the boxes are drawn
            geojson = _download(page, "#dl_geojson", tmp_path)
            geo = json.loads(geojson.read_text())
            assert geojson.name == "dota_demo.pixels.geojson" and geo["type"] == "FeatureCollection"
            assert len(geo["features"]) == n and geo["rdet"]["coordinate_space"] == "pixel"
            with zipfile.ZipFile(_download(page, "#dl_task1", tmp_path)) as z:  # the DOTA server's submission
                assert sorted(z.namelist()) == ["Task1_large-vehicle.txt", "Task1_small-vehicle.txt"]
                lines = z.read("Task1_large-vehicle.txt").decode().splitlines()
                assert z.read("Task1_small-vehicle.txt") == b""
            assert len(lines) == n
            for line in lines:
                parts = line.split()
                assert len(parts) == 10 and parts[0] == "dota_demo" and 0.05 < float(parts[1]) <= 1
                assert all(np.isfinite([float(v) for v in parts[2:]]))
            # a threshold change re-filters the cached detections: the model does not run again
            calls = demo.backend_calls
            number = page.locator("#score input[type=number]")
            number.fill("0.12")
            number.press("Enter")
            page.locator("#status").get_by_text("above score 0.12").wait_for(timeout=60_000)
            assert 0 < _count(page) < n
            assert (demo.inference_runs, demo.backend_calls) == (1, calls)
            assert "the model did not run" in page.locator("#status").inner_text()
            # above the best score: nothing passes, and the page says what to do
            number.fill("0.5")
            number.press("Enter")
            page.locator("#status").get_by_text("lower the threshold").wait_for(timeout=60_000)
            assert _count(page) == 0 and demo.inference_runs == 1
            # a bad upload: a clean error, and the old result is gone
            number.fill("0.05")
            number.press("Enter")
            page.locator("#status").get_by_text("above score 0.05").wait_for(timeout=60_000)
            capfd.readouterr()
            page.set_input_files("#upload input[type=file]", str(bad))
            page.locator("#scene").get_by_text("broken.png").wait_for(timeout=30_000)
            page.click("#run")
            page.locator("#status").get_by_text("Error").wait_for(timeout=60_000)
            text = page.locator("#status").inner_text()
            assert "broken.png: cannot decode" in text and "/" not in text.split("broken.png")[0]
            assert page.locator("#annotated img").count() == 0  # the previous result image is cleared
            assert _table_rows(page) == 0
            assert page.locator("#legend").inner_text().strip() == ""
            assert page.locator("#dl_png").is_disabled()
            out, err = capfd.readouterr()  # the server console: one line for the visitor's error, no traceback
            lines = [line for line in err.splitlines() if "broken.png" in line]
            assert len(lines) == 1 and lines[0].startswith("rdet serve: request refused: broken.png: cannot decode")
            assert "Traceback" not in out + err
            page.screenshot(path=str(shots / "3_error.png"), full_page=True)
            browser.close()
    finally:
        app.close()
        demo.close()
