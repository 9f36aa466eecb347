"""``rdet.predict``: tiled inference on scenes of any size, with a PyTorch, ONNX Runtime or TensorRT backend.

The scene is cut into overlapping windows (:mod:`rdet.inference.tiling`), windows are read from disk batch by
batch (:mod:`rdet.inference.io`: only the windows' TIFF tiles are decoded), run through the backend, mapped
back to scene pixels and merged class by class with exact rotated NMS, so an object cut by a window border is
reported once. Example::

    dets = rdet.predict("scene.tif", "model.pt", tile=1024, overlap=200)
    dets.boxes, dets.scores, dets.labels, dets.class_names   # scene pixels, canonical (cx, cy, w, h, angle)
    dets.info.tiles, dets.info.ms_per_tile, dets.info.total_s, dets.info.georef

Command line: ``rdet predict IMAGE|FOLDER... --model PATH --output DIR`` (:mod:`rdet.commands.predict`) writes the
official ``Task1_<class>.txt`` files, and per image a JSON, a GeoJSON and the annotated PNG
(:mod:`rdet.inference.outputs`).
"""

from __future__ import annotations

import copy
import math
import time
import typing
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor, nn

from rdet.detections import Detections
from rdet.inference import io
from rdet.inference.tiling import (
    batched,
    check_tiling,
    merge_detections,
    pad_image,
    resize_window,
    tile_windows,
    touches_inner_border,
    window_to_scene,
)
from rdet.models.detector import IMAGENET_MEAN, DenseDetector
from rdet.utils.progress import Progress

BACKENDS = ("torch", "onnx", "trt")
SUFFIXES = {"torch": (".pt", ".pth"), "onnx": (".onnx",), "trt": (".engine", ".trt", ".plan")}
DEFAULT_IOU_THR = 0.1  # MMRotate merges DOTA patches with rotated NMS at IoU 0.1


@dataclass
class PredictInfo:
    """How a scene was predicted: its size, the tiling, and where the time went (seconds)."""

    source: str
    width: int
    height: int
    reader: str
    backend: str
    device: str
    tile: int
    overlap: int
    scales: tuple[float, ...]
    batch: int
    score_thr: float | None
    iou_thr: float
    tiles: int = 0
    raw_detections: int = 0  # before merging
    read_s: float = 0.0  # reading + resizing windows
    infer_s: float = 0.0  # the backend
    merge_s: float = 0.0  # mapping + NMS
    total_s: float = 0.0
    georef: io.GeoRef | None = None

    @property
    def ms_per_tile(self) -> float:
        """Backend time per tile in milliseconds."""
        return 1000.0 * self.infer_s / max(self.tiles, 1)

    def summary(self) -> str:
        return (
            f"{self.tiles} tile{'s' * (self.tiles != 1)} ({self.tile} px, overlap {self.overlap}) | "
            f"{self.ms_per_tile:.0f} ms/tile | "
            f"total {self.total_s:.2f} s"
        )

    def as_dict(self) -> dict:
        """JSON-friendly view (the GeoRef as ``crs`` + ``transform``)."""
        out = {
            k: getattr(self, k)
            for k in (
                "source",
                "width",
                "height",
                "reader",
                "backend",
                "device",
                "tile",
                "overlap",
                "batch",
                "score_thr",
                "iou_thr",
                "tiles",
                "raw_detections",
                "read_s",
                "infer_s",
                "merge_s",
                "total_s",
            )
        }
        out.update(scales=list(self.scales), ms_per_tile=self.ms_per_tile)
        if self.georef is not None:
            out.update(crs=self.georef.crs, transform=list(self.georef.transform))
        return out


@dataclass
class SceneDetections(Detections):
    """:class:`~rdet.detections.Detections` of a whole scene (boxes in scene pixels) plus :class:`PredictInfo`."""

    info: PredictInfo | None = field(default=None, repr=False)

    def select(self, keep: Tensor) -> SceneDetections:
        """A subset (``keep``: index or bool mask), keeping ``info``."""
        d = super().select(keep)
        return SceneDetections(d.boxes, d.scores, d.labels, d.class_names, self.info)


# ---------------------------------------------------------------------------------------------- backends
@runtime_checkable
class Backend(Protocol):
    """What :func:`predict` runs: a callable on same-size uint8 RGB tiles ``[h, w, 3]`` returning, per tile,
    ``(boxes [K, 5] in tile pixels, scores [K], labels [K])``; ``iou_thr`` is also the merge threshold."""

    name: str
    device: str
    class_names: list[str]
    score_thr: float | None
    iou_thr: float

    def __call__(self, tiles: list[np.ndarray]) -> list[tuple[Tensor, Tensor, Tensor]]: ...

    def with_thresholds(self, score_thr: float | None, iou_thr: float | None) -> Backend: ...


class TorchBackend:
    """Runs an rdet ``nn.Module`` (``model.predict``) on batches of uint8 RGB tiles."""

    name = "torch"

    def __init__(
        self, model: nn.Module, device: str = "cpu", score_thr: float | None = None, iou_thr: float | None = None
    ):
        if not hasattr(model, "predict") or not hasattr(model, "class_names"):
            raise ValueError(
                f"backend 'torch' needs an rdet detector (with .predict and .class_names), got {type(model).__name__}"
            )
        self.device = str(device)
        self.model = typing.cast(DenseDetector, model.to(self.device).eval())
        self.class_names = list(self.model.class_names)
        self.score_thr = score_thr
        test = getattr(getattr(model, "cfg", None), "test", None)
        self.iou_thr = iou_thr if iou_thr is not None else getattr(test, "iou_thr", DEFAULT_IOU_THR)

    def with_thresholds(self, score_thr: float | None, iou_thr: float | None) -> TorchBackend:
        """The same model with other thresholds (``None`` keeps the current one); the model is shared."""
        out = copy.copy(self)
        out.score_thr = self.score_thr if score_thr is None else score_thr
        out.iou_thr = self.iou_thr if iou_thr is None else iou_thr
        return out

    @torch.no_grad()
    def __call__(self, tiles: list[np.ndarray]) -> list[tuple[Tensor, Tensor, Tensor]]:
        """``tiles``: same-size uint8 RGB ``[h, w, 3]`` -> per tile ``(boxes [K, 5], scores [K], labels [K])``."""
        x = torch.from_numpy(np.stack(tiles)).to(self.device).permute(0, 3, 1, 2)  # [B, 3, h, w] uint8
        # the model normalises and pads (DenseDetector.preprocess_image), as in training and the exported graph
        dets = self.model.predict(x, score_thr=self.score_thr, iou_thr=self.iou_thr)
        return [(d.boxes, d.scores, d.labels) for d in dets]


class RunnerBackend:
    """Runs an exported model with ``export.runtime.Runner(path).run(images) -> per-image dicts``.

    Tiles go in as uint8 RGB ``[B, 3, H, W]`` padded at the bottom/right to the graph's fixed input size
    (``Runner.input_size``) with the mean colour (0 after the normalisation inside the graph); each result has
    ``boxes [K, 5]``, ``scores [K]``, ``labels [K]``. NMS runs inside the graph (or right after it, for
    ``--nms none``) with the thresholds recorded at export: ``score_thr`` can only raise the exported score
    threshold, and ``iou_thr`` applies to the merge across windows.
    """

    def __init__(
        self,
        path: str | Path,
        kind: str,
        device: str = "cpu",
        score_thr: float | None = None,
        iou_thr: float | None = None,
    ):
        from rdet.export.runtime import Runner  # onnx/tensorrt are imported only for these backends

        self.name, self.device, self.path = kind, str(device), Path(path)
        self.runner = Runner(str(path), device=self.device)
        self.class_names = list(self.runner.class_names)
        self.input_size = tuple(int(s) for s in self.runner.input_size)  # (H, W)
        params = getattr(self.runner, "meta", {}).get("nms_params", {})
        self.score_floor = float(params.get("score_threshold", 0.0))
        self.score_thr = score_thr
        self.iou_thr = float(iou_thr if iou_thr is not None else params.get("iou_threshold", DEFAULT_IOU_THR))

    def with_thresholds(self, score_thr: float | None, iou_thr: float | None) -> RunnerBackend:
        """The same runner with other thresholds (``None`` keeps the current one)."""
        out = copy.copy(self)
        out.score_thr = self.score_thr if score_thr is None else score_thr
        out.iou_thr = self.iou_thr if iou_thr is None else iou_thr
        return out

    def __call__(self, tiles: list[np.ndarray]) -> list[tuple[Tensor, Tensor, Tensor]]:
        h, w = tiles[0].shape[:2]
        H, W = self.input_size
        if h > H or w > W:
            raise ValueError(
                f"{self.path}: tiles of {w}x{h} do not fit the model's fixed input {W}x{H}; use "
                f"tile <= {min(H, W)} or export with a larger --imgsz"
            )
        mean = tuple(round(m) for m in IMAGENET_MEAN)  # the graph normalises with the models' statistics
        x = np.stack([pad_image(t, H, W, mean) for t in tiles]).transpose(0, 3, 1, 2)  # [B, 3, H, W]
        out = []
        for r in self.runner.run(np.ascontiguousarray(x)):
            boxes = torch.as_tensor(np.asarray(r["boxes"]), dtype=torch.float32).reshape(-1, 5)
            scores = torch.as_tensor(np.asarray(r["scores"]), dtype=torch.float32).reshape(-1)
            labels = torch.as_tensor(np.asarray(r["labels"]), dtype=torch.long).reshape(-1)
            if self.score_thr is not None and self.score_thr > self.score_floor:
                keep = scores > self.score_thr
                boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
            out.append((boxes, scores, labels))
        return out


def load_backend(
    model_or_path,
    backend: str = "torch",
    device: str = "cpu",
    score_thr: float | None = None,
    iou_thr: float | None = None,
):
    """A callable backend ``tiles -> [(boxes, scores, labels)]`` with ``class_names`` and ``iou_thr``.

    Args:
        model_or_path: an rdet ``nn.Module``, checkpoint (``.pt``) or published model name (``rdet zoo``) for
            ``'torch'``; an ``.onnx`` file for ``'onnx'``; a TensorRT engine (``.engine``/``.trt``/``.plan``)
            for ``'trt'``.

    Raises:
        ValueError: unknown backend, or a model/backend mismatch (naming both).
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if isinstance(model_or_path, nn.Module):
        if backend != "torch":
            raise ValueError(
                f"model/backend mismatch: backend {backend!r} needs a {'/'.join(SUFFIXES[backend])} "
                f"file, got an nn.Module (use backend='torch')"
            )
        return TorchBackend(model_or_path, device, score_thr, iou_thr)
    if isinstance(model_or_path, Backend):
        if backend != "torch" and model_or_path.name != backend:  # 'torch' is the default: any loaded backend
            raise ValueError(
                f"model/backend mismatch: a loaded {model_or_path.name!r} backend with backend={backend!r}"
            )
        return model_or_path.with_thresholds(score_thr, iou_thr)
    if not isinstance(model_or_path, (str, Path)):
        raise ValueError(f"model must be an nn.Module or a file path, got {type(model_or_path).__name__}")
    path = Path(model_or_path)
    if not path.is_file():
        from rdet import zoo

        if zoo.is_name(path) and backend == "torch":  # a published model, downloaded once into the cache
            from rdet.checkpoint import load_checkpoint

            return TorchBackend(load_checkpoint(str(path), device=device), device, score_thr, iou_thr)
        raise FileNotFoundError(f"model not found: {path} (not a file, nor a published model name: see 'rdet zoo')")
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES[backend]:
        fits = [b for b, s in SUFFIXES.items() if suffix in s]
        hint = f" (use backend={fits[0]!r})" if fits else ""
        raise ValueError(
            f"model/backend mismatch: backend {backend!r} reads {'/'.join(SUFFIXES[backend])} files, "
            f"got {path.name}{hint}"
        )
    if backend == "torch":
        from rdet.checkpoint import load_checkpoint

        return TorchBackend(load_checkpoint(path, device=device), device, score_thr, iou_thr)
    return RunnerBackend(path, backend, device, score_thr, iou_thr)


# ---------------------------------------------------------------------------------------------- predict
def predict(
    image_or_path,
    model_or_path,
    tile: int = 1024,
    overlap: int = 200,
    scales: Sequence[float] = (1.0,),
    batch: int = 8,
    backend: str = "torch",
    score_thr: float | None = None,
    iou_thr: float | None = None,
    device: str = "cpu",
    progress: bool = True,
    max_pixels: int | None = None,
) -> SceneDetections:
    """Detect objects in a scene of any size by sliding-window inference.

    Args:
        image_or_path: a PNG/JPEG/BMP/TIFF path, a uint8 RGB array ``[H, W, 3]``, or an opened ``io.Scene``.
        model_or_path: see :func:`load_backend` (a backend it returned is reused as is). An ``nn.Module`` is
            moved to ``device`` and put in eval mode.
        tile, overlap: window size and overlap in network pixels (``tile > overlap``).
        scales: resize factors; each lays its own grid on the scene resized by it, and all are merged.
        batch: windows per backend call (peak memory grows with it, not with the scene, for tiled TIFFs).
        score_thr: per-window score threshold (``None``: the model's ``test.score_thr``; an exported graph's
            own threshold is a floor).
        iou_thr: NMS IoU threshold within windows and for the merge (``None``: the model's ``test.iou_thr``).
        progress: show a progress bar over tiles on stderr.
        max_pixels: pixel budget of a scene given by path or array (``None``: ``io.DEFAULT_MAX_PIXELS``), checked
            from the header before anything is decoded (``io.ImageTooLargeError``).

    Returns:
        :class:`SceneDetections`: boxes ``[N, 5]`` in scene pixels (canonical convention), scores ``[N]``
        (decreasing), labels ``[N]``, class_names, and ``info`` (:class:`PredictInfo`: tiles, timing, georef).
    """
    t_start = time.perf_counter()
    check_tiling(tile, overlap)
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch must be an integer >= 1, got {batch!r}")
    scales = tuple(float(s) for s in scales)
    if not scales or not all(s > 0 and math.isfinite(s) for s in scales):
        raise ValueError(f"scales must be a non-empty list of positive numbers, got {scales!r}")
    owned = not isinstance(image_or_path, io.Scene)
    scene = io.open_scene(image_or_path, max_pixels)  # before the model loads: a refused scene costs nothing
    try:
        runner = load_backend(model_or_path, backend, device, score_thr, iou_thr)
    except BaseException:
        if owned:
            scene.close()
        raise
    try:
        return _predict_scene(scene, runner, tile, overlap, scales, batch, progress, t_start)
    finally:
        if owned:
            scene.close()


def _predict_scene(
    scene: io.Scene,
    runner,
    tile: int,
    overlap: int,
    scales: tuple[float, ...],
    batch: int,
    progress: bool,
    t_start: float,
) -> SceneDetections:
    W, H = scene.width, scene.height
    info = PredictInfo(
        scene.source,
        W,
        H,
        scene.reader,
        runner.name,
        runner.device,
        tile,
        overlap,
        scales,
        batch,
        runner.score_thr,
        runner.iou_thr,
        georef=scene.georef,
    )
    groups = [tile_windows(W, H, tile, overlap, s) for s in scales]  # one output size per scale: batchable
    windows = [w for g in groups for w in g]
    info.tiles = len(windows)
    parts: list[tuple[Tensor, Tensor, Tensor, Tensor, Tensor]] = []
    wid = 0
    nonfinite = 0
    name = Path(scene.source).name
    with Progress(len(windows), f"predict {name}", enabled=progress) as bar:
        for group in groups:
            for chunk in batched(group, batch):
                t0 = time.perf_counter()
                pixels = [resize_window(scene.read(w.x, w.y, w.w, w.h), w) for w in chunk]
                t1 = time.perf_counter()
                results = runner(pixels)
                t2 = time.perf_counter()
                for w, (boxes, scores, labels) in zip(chunk, results):
                    boxes, scores, labels = boxes.detach().cpu(), scores.detach().cpu(), labels.detach().cpu()
                    finite = torch.isfinite(boxes).all(1) & torch.isfinite(scores)
                    if not bool(finite.all()):  # a broken model: never let NaN reach NMS or the outputs
                        nonfinite += int((~finite).sum())
                        boxes, scores, labels = boxes[finite], scores[finite], labels[finite]
                    boxes = window_to_scene(boxes.double(), w)
                    parts.append(
                        (
                            boxes,
                            scores.detach().cpu().float(),
                            labels.detach().cpu().long(),
                            torch.full((len(boxes),), wid, dtype=torch.long),
                            touches_inner_border(boxes, w, W, H),
                        )
                    )
                    wid += 1
                info.read_s += t1 - t0
                info.infer_s += t2 - t1
                info.merge_s += time.perf_counter() - t2
                bar.update(len(chunk))
                # the backend time so far over the tiles done so far (not over all tiles: issue 15.4)
                bar.set_postfix({"ms/tile": round(1000.0 * info.infer_s / wid)})
    if nonfinite:
        warnings.warn(
            f"{scene.source}: the model returned {nonfinite} detection(s) with NaN or infinite boxes/scores; "
            f"they were dropped (is the checkpoint broken?)",
            stacklevel=3,
        )
    t0 = time.perf_counter()
    boxes, scores, labels, wids, cut = (torch.cat(x) for x in zip(*parts))
    info.raw_detections = len(boxes)
    keep = merge_detections(boxes, scores, labels, runner.iou_thr, cut, wids)
    info.merge_s += time.perf_counter() - t0
    info.total_s = time.perf_counter() - t_start
    return SceneDetections(boxes[keep].float(), scores[keep], labels[keep], list(runner.class_names), info)


# ---------------------------------------------------------------------------------------------- outputs
def write_outputs(
    dets: SceneDetections,
    scene: io.Scene,
    out_dir: str | Path,
    image_id: str,
    scores: bool = True,
    max_png_side: int | None = 8192,
    notes: list[str] | None = None,
) -> dict[str, Path]:
    """Write one scene's results into ``out_dir`` (the layout is documented in :mod:`rdet.inference.outputs`).

    ``Task1_<class>.txt`` (merged per image id), ``<image_id>.json``, ``<image_id>.geojson`` (WGS84 lon/lat) or
    ``<image_id>.pixels.geojson`` (pixel space), and ``<image_id>.png``. ``image_id`` (no whitespace) names the
    files and the Task1 lines; :func:`rdet.inference.outputs.image_id_of` makes one from a file name.

    Args:
        notes: collects what the user should know (a georeferenced scene written in pixel space, and why);
            ``None`` issues them as warnings.

    Returns:
        ``{'task1': folder, 'json', 'geojson', 'png'}`` paths.
    """
    from rdet.inference import outputs

    out_dir = Path(out_dir)
    if not image_id or any(c.isspace() for c in image_id):
        raise ValueError(f"image_id must be a non-empty name without whitespace, got {image_id!r}")
    info = dets.info.as_dict() if dets.info is not None else {}
    georef = dets.info.georef if dets.info is not None else None
    outputs.update_task1_dir(out_dir, {image_id: dets})
    files = {"task1": out_dir, "json": outputs.write_json(out_dir / f"{image_id}.json", dets, info, image_id)}
    files["geojson"], note = outputs.write_scene_geojson(out_dir, image_id, dets, georef)
    stale = out_dir / (f"{image_id}.geojson" if note or georef is None else f"{image_id}{outputs.PIXEL_SUFFIX}")
    stale.unlink(missing_ok=True)  # an earlier run's other GeoJSON of this image would contradict this one
    if note:
        if notes is None:
            warnings.warn(note, stacklevel=2)
        else:
            notes.append(note)
    image, f = scene.read_all(max_png_side)
    files["png"] = outputs.write_png(
        out_dir / f"{image_id}.png", outputs.draw_detections(image, dets, scores=scores, scale=f)
    )
    return files


__all__ = [
    "predict",
    "load_backend",
    "Backend",
    "PredictInfo",
    "SceneDetections",
    "TorchBackend",
    "RunnerBackend",
    "write_outputs",
    "BACKENDS",
]
