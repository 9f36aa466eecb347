"""The demo's engine, without gradio: model defaults, per-request budgets, cached inference and exact re-filtering.

One :class:`Demo` serves every visitor. A request runs the model once on a scene (:meth:`Demo.detect`) and keeps
what the backend returned for every window, at the lowest score threshold it needs (:class:`Result`, one per
visitor, kept by the page's session state). A change of score threshold (:meth:`Demo.refilter`) replays those
window outputs, filtered at the new threshold, through the same ``rdet.predict`` merge (rotated NMS and the
window-border rule), without reading pixels or running the model: the result equals a fresh run at that
threshold, because a detector's per-window output at a higher threshold is its output at a lower one filtered by
score (the score filter, top-k and greedy NMS all keep the higher-scored boxes first, so the two agree up to exact
score ties at a top-k cut; ``tests/test_serve.py`` checks the equality). The class filter selects from the merged
result. Only a new scene, tile, overlap, scale, NMS IoU or a threshold below the cached one runs the model again.

Budgets (:class:`rdet.serve.budget.Budget`) bound what one request may cost: the upload's bytes, the scene's
pixels (read from the file header before anything is decoded), its number of tiles, and the model's time
(checked between batches).
"""

from __future__ import annotations

import atexit
import math
import shutil
import tempfile
import threading
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from rdet.inference import io
from rdet.inference.predict import SUFFIXES, SceneDetections, load_backend, predict
from rdet.inference.tiling import check_tiling
from rdet.resources import samples_dir
from rdet.serve.budget import Budget

MAX_DISPLAY_SIDE = 2048  # the page shows (and the PNG download holds) a shrunk copy of huge scenes
BATCH = 2  # windows per backend call; the time budget is checked between calls
KEEP_OUTPUTS_S = 120.0  # a request's download folder outlives the request this long (gradio copies it at once)


class RequestError(ValueError):
    """A request this server refuses (too large, over budget, bad settings); the message is for the page."""


@dataclass(frozen=True)
class Defaults:
    """The page's starting settings, read from the model (a checkpoint's config, an export's metadata)."""

    score_thr: float
    iou_thr: float
    tile: int
    overlap: int
    tile_max: int  # the largest tile the model takes (a fixed-size exported graph: its input size)
    class_names: tuple[str, ...]
    scale: float = 1.0
    score_min: float = 0.0  # an exported graph drops everything below its own threshold: no point going lower


def default_overlap(tile: int) -> int:
    """MMRotate's 1024/200 ratio, rounded to 8 px: 1024 -> 200, 512 -> 96, 256 -> 48."""
    return int(8 * round(tile * 200 / 1024 / 8))


def model_defaults(backend) -> Defaults:
    """Score threshold, NMS IoU, tile and classes the model was made for.

    A checkpoint: ``model.test.score_thr`` and ``data.img_size`` of its config. An exported graph: the score
    threshold recorded at export and its fixed input size (a larger tile would not fit it).
    """
    names = tuple(backend.class_names)
    iou = float(backend.iou_thr)
    input_size = getattr(backend, "input_size", None)
    if input_size is not None:  # an exported graph of fixed size
        tile = int(min(input_size))
        floor = float(getattr(backend, "score_floor", 0.0))
        return Defaults(floor if floor > 0 else 0.05, iou, tile, default_overlap(tile), tile, names, score_min=floor)
    model = getattr(backend, "model", None)
    test = getattr(getattr(model, "cfg", None), "test", None)
    score = float(getattr(test, "score_thr", 0.05))
    size = getattr(getattr(getattr(model, "config", None), "data", None), "img_size", (1024, 1024))
    tile = int(max(size))
    return Defaults(score, iou, tile, default_overlap(tile), max(2048, tile), names)


def bundled_samples(folder: Path | None = None) -> dict[str, Path]:
    """``{file name: path}`` of the scenes shipped with rdet (``scenes/``, then the DOTA sample images)."""
    folders = [folder] if folder is not None else [samples_dir() / "scenes", samples_dir() / "dota" / "images"]
    out: dict[str, Path] = {}
    for f in folders:
        if f.is_dir():
            out.update({p.name: p for p in sorted(f.iterdir()) if p.suffix.lower() in io.SUPPORTED})
    return out


# ---------------------------------------------------------------------------------------------- cached inference
class _Recorder:
    """A backend wrapper (``rdet.inference.predict.Backend``) that keeps every call's outputs and stops the run
    once the request's deadline has passed (between batches: a batch in flight finishes)."""

    def __init__(self, backend, deadline: float, limit_s: float, tiles: int, demo: Demo):
        self.backend, self.deadline, self.limit_s, self.tiles, self.demo = backend, deadline, limit_s, tiles, demo
        self.outputs: list[list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]] = []
        self.done = 0
        self.name, self.device, self.class_names = backend.name, backend.device, list(backend.class_names)

    @property
    def score_thr(self):
        return self.backend.score_thr

    @property
    def iou_thr(self):
        return self.backend.iou_thr

    def with_thresholds(self, score_thr, iou_thr) -> _Recorder:
        self.backend = self.backend.with_thresholds(score_thr, iou_thr)
        return self

    def __call__(self, tiles: list[np.ndarray]):
        if time.monotonic() > self.deadline:
            raise RequestError(
                f"stopped after {self.limit_s:g} s with {self.done} of {self.tiles} tiles done: this server "
                f"allows {self.limit_s:g} s of model time per request; lower the scale, raise the tile size or "
                f"upload a smaller scene"
            )
        out = self.backend(tiles)
        out = [(b.detach().cpu(), s.detach().cpu(), lab.detach().cpu()) for b, s, lab in out]
        self.outputs.append(out)
        self.done += len(tiles)
        self.demo.backend_calls += 1
        return out


class _Replay:
    """A backend that returns recorded window outputs, filtered at ``score_thr`` (``scores > score_thr``, as the
    models and the exported graphs filter), in the order they were recorded."""

    def __init__(self, outputs, score_thr: float, iou_thr: float, name: str, device: str, class_names):
        self.outputs, self.score_thr, self.iou_thr = outputs, score_thr, iou_thr
        self.name, self.device, self.class_names = name, device, list(class_names)
        self.i = 0

    def with_thresholds(self, score_thr, iou_thr) -> _Replay:
        return self

    def __call__(self, tiles: list[np.ndarray]):
        if self.i >= len(self.outputs) or len(self.outputs[self.i]) != len(tiles):
            raise RuntimeError("replay of cached detections does not match the window grid")
        out = [
            (b[s > self.score_thr], s[s > self.score_thr], lab[s > self.score_thr])
            for b, s, lab in self.outputs[self.i]
        ]
        self.i += 1
        return out


class _Blank(io.Scene):
    """A scene of the right size, georeferencing and name whose pixels are never needed (a replay)."""

    def __init__(self, width: int, height: int, source: str, reader: str, georef):
        self.width, self.height, self.source, self.reader, self.georef = width, height, source, reader, georef

    def read(self, x: int, y: int, w: int, h: int) -> np.ndarray:
        return np.zeros((h, w, 3), np.uint8)

    def read_all(self, max_side: int | None = None):
        raise RuntimeError("a replayed scene has no pixels")


@dataclass
class Result:
    """One visitor's last model run: what the backend returned per window, and what is needed to redraw it."""

    key: tuple
    path: Path
    name: str  # the scene's file name as the visitor knows it
    image_id: str
    tile: int
    overlap: int
    scale: float
    iou_thr: float
    cache_thr: float  # the window outputs hold every detection scoring above this
    outputs: list = field(repr=False)
    backend: tuple[str, str]  # (name, device)
    width: int = 0
    height: int = 0
    source: str = ""
    reader: str = ""
    georef: object = None
    info: object = None  # PredictInfo of the model run
    image: np.ndarray | None = field(default=None, repr=False)  # the display copy, RGB
    factor: float = 1.0  # display pixels per scene pixel

    @property
    def best_score(self) -> float | None:
        best = [float(s.max()) for call in self.outputs for _, s, _ in call if len(s)]
        return max(best) if best else None


# ---------------------------------------------------------------------------------------------- the demo
class Demo:
    """The app's model, budgets and inference (callable without a browser, e.g. in tests).

    Args:
        model_path: checkpoint (``.pt``), ``.onnx`` file or TensorRT engine; the backend follows the extension
            unless ``backend`` is given.
        samples: ``{name: path}`` offered as sample scenes (default: :func:`bundled_samples`).
        budget: per-request limits (:class:`~rdet.serve.budget.Budget`; default: its defaults).

    Counters (for tests and the console): ``inference_runs`` (model runs over a scene) and ``backend_calls``
    (batches sent to the backend); a re-filter changes neither.
    """

    def __init__(
        self,
        model_path: str | Path,
        backend: str | None = None,
        device: str = "cpu",
        samples: dict[str, Path] | None = None,
        budget: Budget | None = None,
    ):
        suffix = Path(model_path).suffix.lower()
        backend = backend or next((b for b, s in SUFFIXES.items() if suffix in s), "torch")
        self.backend = load_backend(model_path, backend, device)
        self.model_path = Path(model_path)
        self.defaults = model_defaults(self.backend)
        self.class_names = list(self.defaults.class_names)
        self.samples = bundled_samples() if samples is None else dict(samples)
        self.budget = budget or Budget()
        self.inference_runs = 0
        self.backend_calls = 0
        self.ms_per_tile: float | None = None  # measured on this server: refuses requests that cannot finish
        self._lock = threading.Lock()  # one model run at a time, whichever event asked for it
        self.workdir = Path(tempfile.mkdtemp(prefix="rdet_serve_"))
        self._finalizer = weakref.finalize(self, shutil.rmtree, str(self.workdir), True)
        atexit.register(self._finalizer)

    # ------------------------------------------------------------------ files
    def close(self) -> None:
        """Remove the server's temporary folder (also done at exit)."""
        self._finalizer()

    def output_dir(self) -> Path:
        """A fresh folder for one request's downloads; folders of earlier requests older than
        ``KEEP_OUTPUTS_S`` are removed (gradio has copied them into its own cache by then)."""
        now = time.time()
        for old in self.workdir.glob("req_*"):
            try:
                if now - old.stat().st_mtime > KEEP_OUTPUTS_S:
                    shutil.rmtree(old, ignore_errors=True)
            except FileNotFoundError:
                pass
        return Path(tempfile.mkdtemp(prefix="req_", dir=self.workdir))

    # ------------------------------------------------------------------ requests
    def resolve(self, upload: str | None, sample: str | None) -> tuple[Path, str]:
        """The scene to run on and its name: the upload if any, else the picked sample."""
        if upload:
            path = Path(upload)
            size_mb = path.stat().st_size / 2**20
            if size_mb > self.budget.max_upload_mb:
                raise RequestError(
                    f"{path.name} is {size_mb:.1f} MB; this server accepts uploads up to "
                    f"{self.budget.max_upload_mb:g} MB"
                )
            return path, path.name
        if sample:
            if sample not in self.samples:
                raise RequestError(f"unknown sample {sample!r}; choose one of {', '.join(sorted(self.samples))}")
            return self.samples[sample], sample
        raise RequestError("upload a scene or pick a sample first")

    def detect(
        self,
        upload: str | None,
        sample: str | None,
        score_thr: float,
        iou_thr: float,
        tile: int,
        overlap: int,
        scale: float = 1.0,
        state: Result | None = None,
    ) -> tuple[SceneDetections, Result, bool]:
        """Detections above ``score_thr`` on the upload (or sample), reusing ``state`` when only the threshold
        differs and it is not below the cached one.

        Returns:
            (detections, the result to keep for this visitor, whether the model ran).
        """
        path, name = self.resolve(upload, sample)
        tile, overlap, scale = _int_setting("tile", tile), _int_setting("overlap", overlap), float(scale)
        score_thr, iou_thr = _threshold("score threshold", score_thr), _threshold("NMS IoU", iou_thr)
        stat = path.stat()
        key = (str(path), stat.st_size, stat.st_mtime_ns, tile, overlap, scale, iou_thr)
        ran = False
        if state is None or state.key != key or score_thr < state.cache_thr:
            state = self._infer(path, name, key, tile, overlap, scale, iou_thr, min(score_thr, self.defaults.score_thr))
            ran = True
        return self.filtered(state, score_thr), state, ran

    def refilter(self, state: Result, score_thr: float) -> tuple[SceneDetections, Result, bool]:
        """Detections of ``state``'s scene and settings above ``score_thr``: a replay of the cached window outputs,
        or a new model run when ``score_thr`` is below the cached threshold."""
        score_thr = _threshold("score threshold", score_thr)
        if score_thr < state.cache_thr:
            state = self._infer(
                state.path, state.name, state.key, state.tile, state.overlap, state.scale, state.iou_thr, score_thr
            )
            return self.filtered(state, score_thr), state, True
        return self.filtered(state, score_thr), state, False

    def filtered(self, state: Result, score_thr: float) -> SceneDetections:
        """The merged detections of ``state`` above ``score_thr`` (``>= state.cache_thr``), without the model."""
        if score_thr < state.cache_thr:
            raise ValueError(f"score threshold {score_thr} is below the cached {state.cache_thr}")
        replay = _Replay(state.outputs, score_thr, state.iou_thr, *state.backend, self.class_names)
        blank = _Blank(state.width, state.height, state.source, state.reader, state.georef)
        dets = predict(blank, replay, state.tile, state.overlap, (state.scale,), BATCH, progress=False)
        dets.info = state.info  # how the model ran (tiles, ms/tile), not how long the replay took
        return dets

    def _infer(self, path, name, key, tile, overlap, scale, iou_thr, cache_thr) -> Result:
        check_tiling(tile, overlap)
        if tile > self.defaults.tile_max:
            raise RequestError(f"tile {tile} is larger than this model's input ({self.defaults.tile_max} px)")
        if not (0.05 <= scale <= 4.0):
            raise RequestError(f"scale must lie in [0.05, 4], got {scale:g}")
        # from the header alone (nothing decoded): the pixel budget (io.ImageTooLargeError), then the tile budget
        width, height = io.image_size(path)
        tiles = io.tile_count(path, tile, overlap, (scale,), self.budget.max_pixels)
        if tiles > self.budget.max_tiles:
            raise RequestError(
                f"{name}: {width} x {height} px needs {tiles} tiles of {tile} px at scale {scale:g}; this server "
                f"runs at most {self.budget.max_tiles} per request: lower the scale, raise the tile size or "
                f"upload a smaller scene"
            )
        if self.ms_per_tile is not None and tiles * self.ms_per_tile / 1000 > self.budget.time_limit_s:
            need = tiles * self.ms_per_tile / 1000
            raise RequestError(
                f"{name}: {tiles} tiles would take about {need:.0f} s here ({self.ms_per_tile:.0f} ms per tile); "
                f"this server allows {self.budget.time_limit_s:g} s per request: lower the scale, raise the "
                f"tile size or upload a smaller scene"
            )
        with io.open_scene(path, max_pixels=self.budget.max_pixels) as scene:
            with self._lock:
                deadline = time.monotonic() + self.budget.time_limit_s
                recorder = _Recorder(self.backend, deadline, self.budget.time_limit_s, tiles, self)
                dets = predict(
                    scene,
                    recorder,
                    tile,
                    overlap,
                    (scale,),
                    BATCH,
                    score_thr=cache_thr,
                    iou_thr=iou_thr,
                    progress=False,
                )
                self.inference_runs += 1
            info = dets.info
            ms = info.ms_per_tile
            self.ms_per_tile = ms if self.ms_per_tile is None else 0.7 * self.ms_per_tile + 0.3 * ms
            image, factor = scene.read_all(MAX_DISPLAY_SIDE)
            return Result(
                key=key,
                path=path,
                name=name,
                image_id="_".join(Path(name).stem.split()) or "scene",
                tile=tile,
                overlap=overlap,
                scale=scale,
                iou_thr=iou_thr,
                cache_thr=cache_thr,
                outputs=recorder.outputs,
                backend=(recorder.name, recorder.device),
                width=width,
                height=height,
                source=scene.source,
                reader=scene.reader,
                georef=scene.georef,
                info=info,
                image=np.ascontiguousarray(image),
                factor=factor,
            )


def _int_setting(name: str, value) -> int:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise RequestError(f"{name} must be a number of pixels, got {value!r}") from None
    if not math.isfinite(v) or v != int(v):
        raise RequestError(f"{name} must be a whole number of pixels, got {value!r}")
    return int(v)


def _threshold(name: str, value) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise RequestError(f"{name} must be a number in [0, 1], got {value!r}") from None
    if not 0.0 <= v <= 1.0:
        raise RequestError(f"{name} must lie in [0, 1], got {value!r}")
    return v
