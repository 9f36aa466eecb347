"""Gradio demo: detect oriented objects in an aerial scene of any size, in the browser.

``rdet serve --model demo_out/model.pt [--host 127.0.0.1] [--port 7860]`` (needs ``pip install 'rdet[demo]'``).

The page: upload a scene (PNG/JPEG/TIFF) and press Detect beside it, or click a sample thumbnail (it runs at
once). The settings start from the model's own (its score threshold and input size, from the checkpoint's config
or the export's metadata). The result shows the scene with the detections drawn (labels only where they can be
read), a legend, a table of every detection with its score, and PNG / GeoJSON / DOTA Task1 downloads. Moving the
score threshold or choosing classes re-filters the cached detections at once (:mod:`rdet.serve.demo`); only a new
scene or new tiling/NMS settings run the model again.

Serving: one model run at a time, the others wait in a bounded queue that shows each visitor its position and an
estimate; each request is bounded in upload bytes, pixels (from the header, before decoding), tiles and model
time; a refused request or bad file clears the old result and says why in the page (no server paths), with one
line on the server console. Downloads live in one temporary folder per server, swept as requests come and removed
at exit. Binds 127.0.0.1 unless told otherwise.

Only :mod:`rdet.serve` imports gradio; ``import rdet`` never does.
"""

from __future__ import annotations

import logging
import re
import signal
import sys
import threading
import time
from pathlib import Path

import cv2
import torch

from rdet.serve import render
from rdet.serve.budget import QUEUE_SIZE, Budget
from rdet.serve.demo import Demo, RequestError, bundled_samples

log = logging.getLogger("rdet.serve")
THUMB_SIDE = 256

CSS = """
.rdet-legend {display: flex; flex-wrap: wrap; gap: 4px 16px; font-size: 14px; margin: 2px 0;}
.rdet-legend-item {white-space: nowrap;}
.rdet-swatch {display: inline-block; width: 12px; height: 12px; border-radius: 2px; margin-right: 5px;
  vertical-align: -1px; border: 1px solid #0004;}
#run {min-height: 64px;}
"""

# Hints written for the command line or for Python callers (flags, backticks, keyword arguments, pip) have no
# place in the page: the visitor cannot act on them.
_CLI_HINT = re.compile(
    r"--[a-z]|`|\b[a-z_]+=\S|\bpip install\b|\bCLI\b"
    r"|\brdet (?:predict|serve|train|distill|export|eval|split|convert|bench|demo|zoo|doctor)\b"
)
_ABS_PATH = re.compile(r"(?<![\w.])(?:[A-Za-z]:)?[/\\](?:[^\s/\\:'\"]+[/\\])+([^\s/\\:'\"]+)")


def user_message(error: BaseException, names: dict[str, str] | None = None) -> str:
    """The text of ``error`` for the page: file paths shown by their name only, clauses that point to command-line
    flags or Python arguments dropped."""
    msg = str(error)
    for full, short in sorted((names or {}).items(), key=lambda kv: -len(kv[0])):
        msg = msg.replace(full, short)
    msg = _ABS_PATH.sub(r"\1", msg)
    msg = re.sub(r"\s*\([^()]*\)", lambda m: "" if _CLI_HINT.search(m.group(0)) else m.group(0), msg)
    parts = re.split(r"(?<=;)\s+|(?<=\.)\s+(?=[A-Z])", msg)  # clauses and sentences, not "e.g. x"
    kept = [p for p in parts if not _CLI_HINT.search(p)]
    return " ".join(kept).rstrip(" ;,") or type(error).__name__


def _summary(demo: Demo, state, shown, all_dets, score_thr: float, classes: list[str], ran: bool, t0: float) -> str:
    info = state.info
    n = len(shown)
    what = f"of {', '.join(classes)} " if classes else ""
    lines = [
        f"**{n} object{'s' * (n != 1)}** {what}above score {score_thr:.2f} in **{state.name}** "
        f"({state.width} x {state.height} px)"
    ]
    if n == 0:
        others = len(all_dets) - n
        if classes and others:
            lines.append(f"{others} more of other classes: clear the class filter to see them.")
        else:
            best = state.best_score
            if best is not None and best > score_thr:  # only possible with a class filter
                lines.append(f"The best score was {best:.2f}.")
            elif best is not None:
                lines.append(f"The best score was {best:.2f}: lower the threshold to see detections.")
            else:
                lines.append(
                    f"The model found nothing above {state.cache_thr:.2f} in this scene: try another scale or tile."
                )
    tiles = f"{info.tiles} tile{'s' * (info.tiles != 1)} of {state.tile} px"
    georef = f" · map coordinates ({state.georef.crs or 'CRS without EPSG code'})" if state.georef else ""
    lines.append(
        f"{tiles} (overlap {state.overlap}, scale {state.scale:g}) · {info.ms_per_tile:.0f} ms/tile · "
        f"model {info.total_s:.1f} s ({info.backend}, {info.device}){georef}"
    )
    took = (time.perf_counter() - t0) * 1000
    lines.append(
        f"Model ran for this request ({took / 1000:.1f} s)."
        if ran
        else f"Re-filtered the cached detections in {took:.0f} ms; the model did not run."
    )
    return "  \n".join(lines)


def build_app(
    model_path: str | Path,
    backend: str | None = None,
    device: str = "cpu",
    samples: dict[str, Path] | None = None,
    max_upload_mb: float = 100.0,
    tile: int | None = None,
    overlap: int | None = None,
    scale: float = 1.0,
    score_thr: float | None = None,
    iou_thr: float | None = None,
    max_pixels: int = Budget.max_pixels,
    max_tiles: int = Budget.max_tiles,
    time_limit_s: float = Budget.time_limit_s,
):
    """The Gradio ``Blocks`` of the demo (not launched; ``app.rdet_demo`` is its :class:`~rdet.serve.demo.Demo`).

    ``tile``, ``overlap``, ``score_thr``, ``iou_thr`` default to the model's own (``None``); ``scale`` starts at 1.
    """
    import gradio as gr

    budget = Budget(max_upload_mb, max_pixels, max_tiles, time_limit_s)
    demo = Demo(model_path, backend, device, samples, budget)
    d = demo.defaults
    tile = d.tile if tile is None else tile
    overlap = d.overlap if overlap is None else overlap
    score_thr = d.score_thr if score_thr is None else score_thr
    iou_thr = d.iou_thr if iou_thr is None else iou_thr
    thumbs = _thumbnails(demo)

    def scene_note(upload, sample) -> str:
        if upload:
            return f"Scene: **{Path(upload).name}**"
        return f"Scene: **{sample}** (sample)" if sample else "No scene yet: upload one or click a sample."

    def cleared(message: str):
        return (
            None,
            f"**Error:** {message}",
            "",
            [],
            gr.DownloadButton(value=None, interactive=False),
            gr.DownloadButton(value=None, interactive=False),
            gr.DownloadButton(value=None, interactive=False),
            None,
        )

    def failed(e: BaseException, upload, state):
        names = {str(demo.model_path): demo.model_path.name}
        names.update({str(p): n for n, p in demo.samples.items()})
        for path in (upload, getattr(state, "path", None)):
            if path:
                names[str(Path(path).parent) + "/"] = ""
        if isinstance(e, (ValueError, FileNotFoundError)):  # the visitor's input: one line, no traceback
            message = user_message(e, names)
            log.warning("request refused: %s", message)
        else:
            message = f"internal error ({type(e).__name__}): {user_message(e, names)}"
            log.error("internal error: %s", message, exc_info=e)
        return cleared(message)

    def page(dets, state, score, classes, ran, t0):
        classes = [c for c in (classes or []) if c in demo.class_names]
        shown = dets
        if classes:
            shown = dets.select(
                torch.tensor([dets.class_names[i] in classes for i in dets.labels.tolist()], dtype=torch.bool)
            )
        annotated = render.annotate(state.image, shown, state.factor)
        files = render.write_downloads(demo.output_dir(), state.image_id, annotated, shown, state.georef)
        return (
            # The PNG file, not the array: gradio rewrites the cached copy of an array in place (truncate, write)
            # on every request, so two visitors with the same result could download a half-written picture
            # (seen in the 30-visitor queue test); a file goes into the cache by an atomic rename.
            str(files["png"]),
            _summary(demo, state, shown, dets, float(score), classes, ran, t0)
            + (f"  \n{files['note']}" * bool(files["note"])),
            render.legend_html(shown),
            render.table_rows(shown),
            gr.DownloadButton(value=str(files["png"]), interactive=True),
            gr.DownloadButton(value=str(files["geojson"]), interactive=True),
            gr.DownloadButton(value=str(files["task1"]), interactive=True),
            state,
        )

    def on_detect(upload, sample, score, iou, tile, overlap, scale, classes, state):
        t0 = time.perf_counter()
        try:
            dets, state, ran = demo.detect(upload, sample, score, iou, tile, overlap, scale, state)
            return page(dets, state, score, classes, ran, t0)
        except Exception as e:  # noqa: BLE001 - shown in the page; the app keeps serving
            return failed(e, upload, state)

    def on_filter(score, classes, state):
        if state is None:  # nothing shown yet: the next Detect uses the new settings
            return (gr.skip(),) * 8
        t0 = time.perf_counter()
        try:
            dets, state, ran = demo.refilter(state, score)
            return page(dets, state, score, classes, ran, t0)
        except Exception as e:  # noqa: BLE001
            return failed(e, None, state)

    def on_sample(evt):
        name = list(demo.samples)[evt.index]
        return name, None, scene_note(None, name)

    on_sample.__annotations__["evt"] = gr.SelectData  # gradio finds event data by this (a class, not a string)

    def on_upload(upload):
        return None, scene_note(upload, None), gr.Gallery(selected_index=None)

    with gr.Blocks(title="rdet: oriented object detection in aerial scenes", delete_cache=(600, 3600)) as app:
        gr.Markdown(
            "## rdet: oriented objects in aerial scenes\n"
            f"Model `{demo.model_path.name}` ({demo.backend.name}, {len(demo.class_names)} classes). Scenes of any "
            f"size are cut into overlapping tiles and merged with exact rotated NMS (up to {max_upload_mb:g} MB, "
            f"{max_pixels / 1e6:g} megapixels, {max_tiles} tiles per request)."
        )
        sample_state = gr.State(None)
        result_state = gr.State(None, time_to_live=3600)
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=320):
                with gr.Row(equal_height=True):
                    upload = gr.File(
                        label="Scene (PNG, JPEG, TIFF)",
                        file_types=list(_suffixes()),
                        type="filepath",
                        height=130,
                        scale=3,
                        elem_id="upload",
                    )
                    button = gr.Button("Detect", variant="primary", scale=1, min_width=90, elem_id="run")
                scene_md = gr.Markdown(scene_note(None, None), elem_id="scene")
                gallery = gr.Gallery(
                    value=thumbs,
                    label="Samples: click one to detect",
                    columns=3,
                    height=150,
                    allow_preview=False,
                    object_fit="cover",
                    interactive=False,
                    elem_id="samples",
                )
                score = gr.Slider(
                    max(d.score_min, min(0.01, score_thr)),
                    1.0,
                    value=score_thr,
                    step=0.01,
                    label="Score threshold",
                    info=f"the model's own: {d.score_thr:g}",
                    elem_id="score",
                )
                classes = gr.Dropdown(
                    demo.class_names,
                    value=[],
                    multiselect=True,
                    label="Classes",
                    info="empty: all classes",
                    elem_id="classes",
                )
                with gr.Accordion("Tiling and NMS (changing these runs the model again)", open=False):
                    tile_s = gr.Slider(
                        64,
                        d.tile_max,
                        value=tile,
                        step=32,
                        label="Tile size (px)",
                        info=f"the model's input: {d.tile}",
                        elem_id="tile",
                    )
                    overlap_s = gr.Slider(
                        0, max(512, overlap), value=overlap, step=8, label="Tile overlap (px)", elem_id="overlap"
                    )
                    scale_s = gr.Slider(0.25, 2.0, value=scale, step=0.25, label="Scale", elem_id="scale")
                    iou = gr.Slider(0.01, 0.9, value=iou_thr, step=0.01, label="NMS IoU", elem_id="iou")
            with gr.Column(scale=2):
                status = gr.Markdown(elem_id="status")
                image = gr.Image(label="Detections", type="numpy", format="png", interactive=False, elem_id="annotated")
                legend = gr.HTML(elem_id="legend")
                with gr.Row():
                    png = gr.DownloadButton("Download PNG", interactive=False, size="sm", elem_id="dl_png")
                    geojson = gr.DownloadButton("Download GeoJSON", interactive=False, size="sm", elem_id="dl_geojson")
                    task1 = gr.DownloadButton("Download DOTA Task1", interactive=False, size="sm", elem_id="dl_task1")
                table = gr.Dataframe(
                    headers=render.TABLE_HEADERS,
                    datatype=["number", "str", "number", "number", "number", "number", "number", "number"],
                    label="Detections (scene pixels, by score)",
                    interactive=False,
                    max_height=320,
                    elem_id="table",
                )
        outputs = [image, status, legend, table, png, geojson, task1, result_state]
        detect_inputs = [upload, sample_state, score, iou, tile_s, overlap_s, scale_s, classes, result_state]
        run = dict(fn=on_detect, inputs=detect_inputs, outputs=outputs, concurrency_id="model", concurrency_limit=1)
        button.click(**run, api_name="detect")  # also the API: gradio_client's Client(url).submit(api_name="/detect")
        private = dict(api_visibility="private")
        gallery.select(on_sample, None, [sample_state, upload, scene_md], queue=False, **private).then(**run, **private)
        upload.upload(on_upload, [upload], [sample_state, scene_md, gallery], queue=False, **private)
        refilter = dict(
            fn=on_filter,
            inputs=[score, classes, result_state],
            outputs=outputs,
            concurrency_id="filter",
            concurrency_limit=4,
            trigger_mode="always_last",
            show_progress="minimal",
        )
        score.input(**refilter, **private)
        classes.input(**refilter, **private)
    app.rdet_demo = demo
    return app


def _suffixes() -> tuple[str, ...]:
    from rdet.inference import io

    return tuple(io.SUPPORTED)


def _thumbnails(demo: Demo) -> list[tuple[str, str]]:
    """Small JPEG previews of the samples in the server's temporary folder: ``[(path, name)]``."""
    folder = demo.workdir / "thumbs"
    folder.mkdir(exist_ok=True)
    out = []
    from rdet.data.dataset import read_image

    for name, path in demo.samples.items():
        try:  # the shared reader: pixel budget from the header, corrupt files refused with their name
            image = cv2.cvtColor(read_image(path, max_pixels=demo.budget.max_pixels), cv2.COLOR_RGB2BGR)
        except ValueError as e:  # a sample that cannot be read is left out of the gallery, and the log says why
            log.warning("sample %s has no thumbnail: %s", name, e)
            continue
        f = THUMB_SIDE / max(image.shape[:2])
        thumb = cv2.resize(image, None, fx=f, fy=f, interpolation=cv2.INTER_AREA) if f < 1 else image
        target = folder / f"{Path(name).stem}.jpg"
        cv2.imwrite(str(target), thumb, [cv2.IMWRITE_JPEG_QUALITY, 85])
        out.append((str(target), name))
    return out


class _ConsoleHandler(logging.Handler):
    """One line per record on the current ``sys.stderr`` (looked up at each record, not kept)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            print(self.format(record), file=sys.stderr, flush=True)
        except Exception:  # noqa: BLE001 - logging must never take the server down
            self.handleError(record)


def launch(
    app,
    host: str = "127.0.0.1",
    port: int = 7860,
    max_upload_mb: float = 100.0,
    block: bool = True,
    queue_size: int = QUEUE_SIZE,
):
    """Queue (one model run at a time, at most ``queue_size`` waiting, each shown its position and an estimate)
    and launch; ``block=False`` returns at once (tests). The server's temporary folder goes when it stops."""
    if not log.handlers:
        handler = _ConsoleHandler()
        handler.setFormatter(logging.Formatter("rdet serve: %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False
    app.queue(max_size=queue_size, default_concurrency_limit=1)
    previous = None
    if block and threading.current_thread() is threading.main_thread():
        # SIGTERM (kill, systemd, docker stop) ends the process without running atexit or finally blocks, which
        # left the server's temporary folder behind: stop as Ctrl-C does instead.
        previous = signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        return app.launch(
            server_name=host,
            server_port=port,
            max_file_size=int(max_upload_mb * 2**20),
            prevent_thread_lock=not block,
            quiet=not block,
            show_error=False,
            css=CSS,
        )
    except _Terminated:  # gradio usually handles it (as Ctrl-C) and returns
        return None
    finally:
        if block:
            app.rdet_demo.close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
            if _TERMINATED.is_set():
                log.info("stopped on SIGTERM; temporary files removed")


class _Terminated(KeyboardInterrupt):
    """Raised in the main thread by SIGTERM: gradio stops its server as on Ctrl-C, and :func:`launch` returns."""


_TERMINATED = threading.Event()


def _stop_on_sigterm(signum, frame):
    _TERMINATED.set()  # logged after the server stopped: no logging (locks) inside a signal handler
    raise _Terminated


__all__ = ["build_app", "launch", "user_message", "Demo", "Budget", "RequestError", "bundled_samples"]


if __name__ == "__main__":
    from rdet.commands.serve import cli  # the parser lives with the other commands (fast --help)

    sys.exit(cli(sys.argv[1:]))
