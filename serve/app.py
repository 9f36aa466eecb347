"""Gradio demo: detect oriented objects in an aerial scene of any size, in the browser.

``rdet serve --model demo_out/model.pt [--host 127.0.0.1] [--port 7860]`` (needs ``pip install 'rdet[demo]'``).
Upload a scene (PNG/JPEG/TIFF) or pick a bundled sample; tune the score threshold, NMS IoU, tile size/overlap
and scale; filter classes. The page shows the annotated scene, a per-class count table and the timing (tiles,
ms per tile, total), and offers the DOTA Task1 lines and the GeoJSON for download. Requests are queued (one
inference at a time, a bounded queue), and bad input (corrupt file, unsupported format, tile <= overlap,
too large an upload) is reported in the page while the app keeps serving.

Only :mod:`serve` imports gradio; ``import rdet`` never does.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

from rdet.inference import io
from rdet.inference.predict import SUFFIXES, load_backend, predict
from rdet.resources import samples_dir

SAMPLES_DIR = samples_dir() / "scenes"
MAX_DISPLAY_SIDE = 2048  # the page shows a shrunk copy of huge scenes; downloads keep full precision


def bundled_samples(folder: Path = SAMPLES_DIR) -> dict[str, Path]:
    """``{file name: path}`` of the sample scenes shipped with the repository."""
    if not folder.is_dir():
        return {}
    return {p.name: p for p in sorted(folder.iterdir()) if p.suffix.lower() in io.SUPPORTED}


class Demo:
    """The app's model and its inference function (callable without a browser, e.g. in tests).

    Args:
        model_path: checkpoint (``.pt``), ``.onnx`` file or TensorRT engine; the backend follows the extension
            unless ``backend`` is given.
        samples: ``{name: path}`` offered in the sample picker (default: :func:`bundled_samples`).
        max_upload_mb: larger uploads are refused with a message saying the limit.
    """

    def __init__(
        self,
        model_path: str | Path,
        backend: str | None = None,
        device: str = "cpu",
        samples: dict[str, Path] | None = None,
        max_upload_mb: float = 100.0,
    ):
        suffix = Path(model_path).suffix.lower()
        backend = backend or next((b for b, s in SUFFIXES.items() if suffix in s), "torch")
        self.backend = load_backend(model_path, backend, device)
        self.class_names = list(self.backend.class_names)
        self.samples = bundled_samples() if samples is None else dict(samples)
        self.max_upload_mb = max_upload_mb
        self.model_path = Path(model_path)

    def resolve(self, upload: str | None, sample: str | None) -> Path:
        """The scene to run on: the upload if any, else the picked sample (``ValueError`` naming the problem)."""
        if upload:
            path = Path(upload)
            size_mb = path.stat().st_size / 2**20
            if size_mb > self.max_upload_mb:
                raise ValueError(
                    f"{path.name} is {size_mb:.1f} MB; this demo accepts uploads up to "
                    f"{self.max_upload_mb:g} MB (run `rdet predict` locally for larger scenes)"
                )
            return path
        if sample:
            if sample not in self.samples:
                raise ValueError(f"unknown sample {sample!r}; choose one of {sorted(self.samples)}")
            return self.samples[sample]
        raise ValueError("upload a scene or pick a sample first")

    def run(
        self,
        upload: str | None,
        sample: str | None,
        score_thr: float,
        iou_thr: float,
        tile: int,
        overlap: int,
        scale: float = 1.0,
        classes: list[str] | None = None,
        out_dir: str | Path | None = None,
    ):
        """Predict and render.

        Returns:
            (annotated RGB image, rows ``[[class, count], ...]`` (a ``total`` row last), timing markdown,
            path of the DOTA Task1 ``.txt``, path of the ``.geojson``).
        """
        path = self.resolve(upload, sample)
        with io.open_scene(path) as scene:
            dets = predict(
                scene,
                self.backend,
                int(tile),
                int(overlap),
                (float(scale),),
                batch=4,
                score_thr=float(score_thr),
                iou_thr=float(iou_thr),
                progress=False,
            )
            if classes is not None:
                dets = dets.select(
                    torch.tensor([self.class_names[int(c)] in classes for c in dets.labels.tolist()], dtype=torch.bool)
                )
            image, f = scene.read_all(MAX_DISPLAY_SIDE)
        annotated = io.draw_detections(image, dets, scores=True, scale=f)
        counts = dets.counts()
        rows = [[name, counts[name]] for name in self.class_names if name in counts] + [["total", len(dets)]]
        info = dets.info
        georef = f"; map coordinates ({info.georef.crs or 'CRS without EPSG code'})" if info.georef else ""
        tiles = f"{info.tiles} tile{'s' * (info.tiles != 1)}"
        timing = (
            f"**{len(dets)} objects** in {info.width} x {info.height} px | {tiles} of {info.tile} px "
            f"(overlap {info.overlap}, scale {scale:g}) | **{info.ms_per_tile:.0f} ms/tile** | total "
            f"{info.total_s:.2f} s ({self.backend.name}){georef}"
        )
        out = Path(out_dir or tempfile.mkdtemp(prefix="rdet_serve_"))
        stem = path.stem.replace(" ", "_")
        txt = io.write_task1_txt(out / f"{stem}_task1.txt", dets, stem)
        geojson = io.write_geojson(out / f"{stem}.geojson", dets, info.georef, stem)
        return annotated, rows, timing, str(txt), str(geojson)


def build_app(
    model_path: str | Path,
    backend: str | None = None,
    device: str = "cpu",
    samples: dict[str, Path] | None = None,
    max_upload_mb: float = 100.0,
    tile: int = 1024,
    overlap: int = 200,
    scale: float = 1.0,
    score_thr: float = 0.3,
    iou_thr: float = 0.1,
):
    """The Gradio ``Blocks`` of the demo (not launched; ``app.rdet_demo`` is its :class:`Demo`).

    ``tile``, ``overlap``, ``scale``, ``score_thr``, ``iou_thr`` are the sliders' starting values.
    """
    import gradio as gr

    demo = Demo(model_path, backend, device, samples, max_upload_mb)

    def run(upload, sample, score_thr, iou_thr, tile, overlap, scale, classes):
        try:
            return demo.run(upload, sample, score_thr, iou_thr, tile, overlap, scale, classes)
        except Exception as e:  # noqa: BLE001 - shown in the page; the app keeps serving
            message = (
                str(e)
                if isinstance(e, (ValueError, FileNotFoundError))
                else f"internal error ({type(e).__name__}): {e}"
            )
            if upload:  # name the user's file, not the server's upload folder
                message = message.replace(str(Path(upload).parent) + "/", "")
            raise gr.Error(message) from e

    with gr.Blocks(title="rdet: oriented object detection in aerial scenes") as app:
        gr.Markdown(
            "# rdet: oriented objects in aerial scenes\nUpload a scene of any size (PNG, JPEG, TIFF/GeoTIFF, "
            f"up to {max_upload_mb:g} MB) or pick a sample. The scene is cut into overlapping tiles; "
            f"detections are merged with exact rotated NMS. Model: `{demo.model_path.name}` "
            f"({demo.backend.name}, {len(demo.class_names)} classes)."
        )
        with gr.Row():
            with gr.Column(scale=1):
                upload = gr.File(label="Scene", file_types=list(io.SUPPORTED), type="filepath", elem_id="upload")
                sample = gr.Dropdown(
                    choices=list(demo.samples), value=None, label="...or a bundled sample", elem_id="sample"
                )
                score = gr.Slider(0.0, 1.0, value=score_thr, step=0.01, label="Score threshold", elem_id="score")
                iou = gr.Slider(0.01, 0.9, value=iou_thr, step=0.01, label="NMS IoU", elem_id="iou")
                tile_s = gr.Slider(256, 2048, value=tile, step=32, label="Tile size (px)", elem_id="tile")
                overlap_s = gr.Slider(0, 512, value=overlap, step=8, label="Tile overlap (px)", elem_id="overlap")
                scale_s = gr.Slider(0.25, 2.0, value=scale, step=0.25, label="Scale", elem_id="scale")
                classes = gr.CheckboxGroup(demo.class_names, value=demo.class_names, label="Classes", elem_id="classes")
                button = gr.Button("Detect", variant="primary", elem_id="run")
            with gr.Column(scale=2):
                image = gr.Image(label="Detections", type="numpy", interactive=False, elem_id="annotated")
                timing = gr.Markdown(elem_id="timing")
                table = gr.Dataframe(
                    headers=["class", "count"],
                    datatype=["str", "number"],
                    label="Objects per class",
                    interactive=False,
                    elem_id="counts",
                )
                with gr.Row():
                    txt = gr.File(label="DOTA Task1 (.txt)", elem_id="dota_txt")
                    geojson = gr.File(label="GeoJSON", elem_id="geojson")
        button.click(
            run,
            [upload, sample, score, iou, tile_s, overlap_s, scale_s, classes],
            [image, table, timing, txt, geojson],
            concurrency_limit=1,
        )
    app.rdet_demo = demo
    return app


def launch(app, host: str = "127.0.0.1", port: int = 7860, max_upload_mb: float = 100.0, block: bool = True):
    """Queue (one inference at a time, at most 16 waiting: concurrent users wait instead of crashing it) and
    launch; ``block=False`` returns at once (tests)."""
    app.queue(max_size=16, default_concurrency_limit=1)
    return app.launch(
        server_name=host,
        server_port=port,
        max_file_size=int(max_upload_mb * 2**20),
        prevent_thread_lock=not block,
        quiet=not block,
        show_error=True,
    )


def cli(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="rdet serve", description="Gradio demo of tiled oriented object detection.")
    p.add_argument("--model", required=True, help="checkpoint (.pt), ONNX file or TensorRT engine")
    p.add_argument("--host", default="127.0.0.1", help="0.0.0.0 to serve on the network")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--backend", choices=tuple(SUFFIXES), default=None, help="default: from the model's extension")
    p.add_argument("--device", default="cpu")
    p.add_argument("--max-upload-mb", type=float, default=100.0)
    a = p.parse_args(argv)
    try:
        import gradio  # noqa: F401
    except ImportError:
        print("rdet serve: needs gradio: pip install 'rdet[demo]' (or pip install gradio)", file=sys.stderr)
        return 2
    try:
        app = build_app(a.model, a.backend, a.device, max_upload_mb=a.max_upload_mb)
    except (ValueError, FileNotFoundError) as e:
        print(f"rdet serve: error: {e}", file=sys.stderr)
        return 2
    launch(app, a.host, a.port, a.max_upload_mb)
    return 0


if __name__ == "__main__":
    sys.exit(cli(sys.argv[1:]))
