"""The Gradio demo: its inference function called directly, and end to end in headless Chromium (Playwright).

Needs ``pip install gradio`` (skipped otherwise); the browser test also needs ``pip install playwright`` and a
Chromium binary (Debian: ``apt-get install chromium``), and is skipped without them.
"""

import json
import shutil
import socket
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

gr = pytest.importorskip("gradio")

ROOT = Path(__file__).resolve().parents[1]

import helpers

from rdet.checkpoint import save_checkpoint  # noqa: E402
from rdet.config import Config  # noqa: E402
from rdet.models.build import build_model  # noqa: E402
from rdet.serve.app import build_app, bundled_samples, launch  # noqa: E402

SAMPLE = ROOT / "data" / "samples" / "scenes" / "dota_demo.jpg"


def tiny_config() -> Config:
    return helpers.tiny_config(nms_pre=200, max_per_img=100)


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    torch.manual_seed(0)
    model = build_model(tiny_config()).eval()
    torch.nn.init.zeros_(model.bbox_head.retina_cls.bias)  # scores around 0.5: a random model detects
    ckpt = save_checkpoint(tmp_path_factory.mktemp("serve") / "tiny.pt", model, tiny_config())
    # scale 0.25: the 1616 x 1565 sample becomes one 404 x 391 tile, which keeps the tests fast on 2 cores
    return build_app(ckpt, scale=0.25, score_thr=0.3, max_upload_mb=5)


def test_sample_is_bundled():
    assert SAMPLE.is_file() and "dota_demo.jpg" in bundled_samples()


def test_predict_function_directly(app, tmp_path):
    demo = app.rdet_demo
    image, rows, timing, txt, geojson = demo.run(
        None, "dota_demo.jpg", 0.3, 0.1, 1024, 200, 0.25, ["plane", "ship"], out_dir=tmp_path
    )
    scene = cv2.cvtColor(cv2.imread(str(SAMPLE)), cv2.COLOR_BGR2RGB)
    assert image.shape == scene.shape == (1565, 1616, 3)
    assert (image != scene).any(axis=2).sum() > 500  # boxes drawn
    total = rows[-1]
    assert total[0] == "total" and total[1] > 0 and sum(n for _, n in rows[:-1]) == total[1]
    assert "1 tile of 1024 px" in timing and "ms/tile" in timing
    assert len(Path(txt).read_text().splitlines()) == total[1]
    assert len(json.loads(Path(geojson).read_text())["features"]) == total[1]
    # class filter
    _, rows, *_ = demo.run(None, "dota_demo.jpg", 0.3, 0.1, 1024, 200, 0.25, ["ship"], out_dir=tmp_path)
    assert [r[0] for r in rows] in (["ship", "total"], ["total"])


def test_bad_input_messages(app, tmp_path):
    demo = app.rdet_demo
    with pytest.raises(ValueError, match="upload a scene or pick a sample first"):
        demo.run(None, None, 0.3, 0.1, 1024, 200)
    with pytest.raises(ValueError, match=r"tile \(256\) must be larger than overlap \(256\)"):
        demo.run(None, "dota_demo.jpg", 0.3, 0.1, 256, 256)
    big = tmp_path / "big.png"
    big.write_bytes(b"\0" * (6 * 2**20))
    with pytest.raises(ValueError, match="big.png is 6.0 MB; this demo accepts uploads up to 5 MB"):
        demo.run(str(big), None, 0.3, 0.1, 1024, 200)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(ValueError, match="bad.png: cannot decode"):
        demo.run(str(bad), None, 0.3, 0.1, 1024, 200)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_end_to_end_in_headless_chromium(app, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if chromium is None:
        pytest.skip("no chromium binary (Debian: apt-get install chromium)")
    port = _free_port()
    launch(app, port=port, max_upload_mb=5, block=False)
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{port}/", wait_until="networkidle")
            # a corrupt upload: the error is shown in the page, and the app keeps serving
            uploaded = "#upload [data-testid=download-link]"  # shown once an upload has finished
            page.set_input_files("#upload input[type=file]", str(bad))
            page.locator(uploaded).wait_for(timeout=30_000)
            page.click("#run")
            error = page.get_by_text("broken.png: cannot decode").first
            error.wait_for(timeout=60_000)
            assert error.inner_text().startswith("broken.png")  # the server's upload folder is not shown
            # the bundled sample scene
            page.click("#upload button[aria-label=Clear]")
            page.set_input_files("#upload input[type=file]", str(SAMPLE))
            page.locator(uploaded).wait_for(timeout=30_000)
            page.click("#run")
            page.locator("#timing").get_by_text("objects").wait_for(timeout=120_000)
            text = page.locator("#timing").inner_text()
            n = int(text.split("objects")[0].strip().split()[-1])
            assert n > 0
            counts = page.locator("#counts").inner_text()
            assert "total" in counts and str(n) in counts
            src = page.locator("#annotated img").first.get_attribute("src")
            data = page.request.get(src if src.startswith("http") else f"http://127.0.0.1:{port}{src}").body()
            shown = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            scene = cv2.imread(str(SAMPLE))
            assert shown.shape == scene.shape
            changed = np.abs(shown.astype(int) - scene.astype(int)).max(axis=2) > 60  # boxes, not JPEG noise
            assert changed.sum() > 500
            page.screenshot(path=str(tmp_path / "demo.png"), full_page=True)
            browser.close()
    finally:
        app.close()
