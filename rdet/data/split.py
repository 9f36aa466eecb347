"""Cut large aerial images into training/inference patches (``rdet split``), DOTA-style.

Two reference behaviours, chosen by ``SplitConfig.style``:

``'mmrotate'`` (default; MMRotate's ``tools/data/dota/split/img_split.py``, the seed configs' tables)
    * windows of ``size`` every ``size - gap`` px; the last row/column is shifted back to end at the image
      border; windows whose in-image part covers <= ``img_rate_thr`` of them are dropped;
    * a rate ``r`` only changes the window: ``int(size / r)`` with gap ``int(gap / r)`` (no resizing);
    * an object is kept in a window when its IoF (intersection / object area) >= ``iof_thr`` (0.7); its
      polygon is translated, not clipped; an object not wholly inside gets difficulty ``2``, others keep
      theirs;
    * border patches are padded to the full window (``padding_value``, default the ImageNet mean colour);
    * names ``<image>__<window size>__<x>___<y>``, e.g. ``P0706__1024__0___824``.

``'devkit'`` (the DOTA devkit's ``ImgSplit``; reproduces ``dota_split_512``)
    * the image is resized by each rate (bicubic), windows step by ``size - gap``; the last is shifted back;
      the window used for the geometry ends at ``min(x + size, W - 1)`` (a devkit quirk kept on purpose);
    * every object overlapping a window is kept; a cut one is replaced by its intersection with the
      window (5 corners -> the shortest edge merged to its midpoint; more -> dropped, as the devkit does),
      corners rotated to best match the original order, truncated to integers and clamped to
      ``[1, size]``; difficulty ``2`` when IoF <= ``iof_thr``;
    * border patches padded with 0; names ``<image>__<rate>__<x>___<y>``, e.g. ``P0706__1__0___256``.

Input images are checked before they are decoded (the pixel budget ``max_pixels``, ``rdet.data.images``) and
refused when undecodable or truncated (OpenCV would fill a cut JPEG with grey and only warn on stderr). Bit depth
is converted explicitly (``SplitConfig.depth``): ``'auto'`` keeps 16-bit samples where the patch format holds them
(PNG, TIFF) and scales them to 8 bits (value / 257) for JPEG/BMP, which would clip them to white; ``'keep'``,
``'scale'`` and ``'stretch'`` (2nd..98th percentile per band) choose; the report says which per image.

Patches are written atomically (temporary file, then rename), so a patch whose image and label files both
exist is complete; ``resume=True`` skips those, and skips decoding an image whose patches all exist.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import cv2
import numpy as np
import torch

from rdet.data.annotations import Annotations
from rdet.data.formats import IMAGE_EXTS, read_labels
from rdet.data.images import check_pixels, decode_image, read_header, resolve_max_pixels
from rdet.data.split_devkit import _five_to_four, _shoelace, clip_polygon, devkit_cut  # noqa: F401 - re-exported
from rdet.ops import poly_iou
from rdet.utils.progress import Progress

STYLES = ("mmrotate", "devkit")
DEPTHS = ("auto", "keep", "scale", "stretch")
DEEP_EXTS = (".png", ".tif")  # patch formats that hold 16-bit samples


@dataclass(frozen=True)
class SplitConfig:
    """Options of ``split_image``/``split_dataset`` (module docstring for the two styles)."""

    patch_size: int = 1024
    gap: int = 200
    rates: tuple[float, ...] = (1.0,)
    iof_thr: float = 0.7
    img_rate_thr: float = 0.6
    padding: bool = True
    padding_value: tuple[int, int, int] | None = None  # RGB; None: (124, 116, 104) mmrotate, 0 devkit
    style: str = "mmrotate"
    ext: str = ".png"
    depth: str = "auto"  # 16-bit images: 'auto', 'keep', 'scale', 'stretch' (module docstring)
    max_pixels: int | None = None  # pixel budget per image (None: rdet.data.images.DEFAULT_MAX_PIXELS)

    def __post_init__(self) -> None:
        if self.style not in STYLES:
            raise ValueError(f"style must be one of {STYLES}, got {self.style!r}")
        if not 0 <= self.gap < self.patch_size:
            raise ValueError(f"gap must lie in [0, patch_size), got gap={self.gap}, patch_size={self.patch_size}")
        if not self.rates or min(self.rates) <= 0:
            raise ValueError(f"rates must be positive, got {self.rates}")
        if not 0 <= self.iof_thr <= 1:
            raise ValueError(f"iof_thr must lie in [0, 1], got {self.iof_thr}")
        if self.ext not in (".png", ".jpg", ".bmp", ".tif"):
            raise ValueError(f"ext must be '.png', '.jpg', '.bmp' or '.tif', got {self.ext!r}")
        if self.depth not in DEPTHS:
            raise ValueError(f"depth must be one of {DEPTHS}, got {self.depth!r}")
        if self.depth == "keep" and self.ext not in DEEP_EXTS:
            raise ValueError(
                f"depth='keep' needs an output format that holds 16 bits ({', '.join(DEEP_EXTS)}), got ext={self.ext!r}"
            )
        resolve_max_pixels(self.max_pixels)

    def pad_rgb(self) -> tuple[int, ...]:
        if self.padding_value is not None:
            return tuple(self.padding_value)
        return (124, 116, 104) if self.style == "mmrotate" else (0, 0, 0)


# ----------------------------------------------------------------------------- windows
def sliding_windows(
    width: int, height: int, size: int | list[int], gap: int | list[int], img_rate_thr: float = 0.6
) -> np.ndarray:
    """MMRotate's windows: ``np.ndarray[K, 4]`` int64 ``(x0, y0, x1, y1)``, per size x-major.

    ``size``/``gap`` may be lists (one window grid per pair, as for several rates). Windows whose in-image
    part is <= ``img_rate_thr`` of them are dropped, unless no window of any size passes, then the best ones
    are kept (the rule applies to all sizes together, as in MMRotate).
    """
    sizes, gaps = np.atleast_1d(size).tolist(), np.atleast_1d(gap).tolist()
    wins = []
    for sz, gp in zip(sizes, gaps):
        step = sz - gp
        starts = []
        for length in (width, height):
            n = 1 if length <= sz else math.ceil((length - sz) / step + 1)
            s = [step * i for i in range(n)]
            if len(s) > 1 and s[-1] + sz > length:
                s[-1] = length - sz
            starts.append(s)
        xy = np.array([(x, y) for x in starts[0] for y in starts[1]], dtype=np.int64).reshape(-1, 2)
        wins.append(np.concatenate([xy, xy + sz], 1))
    win = np.concatenate(wins)
    inside_w = np.minimum(win[:, 2], width) - np.maximum(win[:, 0], 0)
    inside_h = np.minimum(win[:, 3], height) - np.maximum(win[:, 1], 0)
    rate = inside_w * inside_h / ((win[:, 2] - win[:, 0]) * (win[:, 3] - win[:, 1]))
    if not (rate > img_rate_thr).any():
        rate[np.abs(rate - rate.max()) < 0.01] = 1  # keep the best windows of a small image
    return win[rate > img_rate_thr]


def devkit_windows(width: int, height: int, size: int, gap: int) -> list[tuple[int, int]]:
    """The DOTA devkit's window origins ``(left, up)`` for an image of ``width x height``."""
    step, out = size - gap, []
    left = 0
    while left < width:
        left = max(width - size, 0) if left + size >= width else left
        up = 0
        while up < height:
            up = max(height - size, 0) if up + size >= height else up
            out.append((left, up))
            if up + size >= height:
                break
            up += step
        if left + size >= width:
            break
        left += step
    return out


def _rect_poly(win: np.ndarray) -> np.ndarray:
    x0, y0, x1, y1 = win.T
    return np.stack([x0, y0, x1, y0, x1, y1, x0, y1], -1).astype(np.float64)


def window_objects(polys: np.ndarray, windows: np.ndarray, iof_thr: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """MMRotate's object rule: for each window the indices of objects with IoF >= ``iof_thr`` and a flag
    per kept object that is True when it is not wholly inside the window.

    Args:
        polys (np.ndarray[N, 8]): objects; windows (np.ndarray[K, 4]): ``(x0, y0, x1, y1)``.
    """
    polys = np.asarray(polys, np.float64).reshape(-1, 8)
    lo, hi = polys.reshape(-1, 4, 2).min(1), polys.reshape(-1, 4, 2).max(1)
    out = []
    for win in np.asarray(windows, np.float64).reshape(-1, 4):
        cand = np.nonzero((lo[:, 0] < win[2]) & (hi[:, 0] > win[0]) & (lo[:, 1] < win[3]) & (hi[:, 1] > win[1]))[0]
        if len(cand):
            rect = torch.from_numpy(np.repeat(_rect_poly(win[None]), len(cand), 0))
            iof = poly_iou(torch.from_numpy(polys[cand]), rect, mode="iof", aligned=True).numpy()
            # "wholly inside" is decided on the corners, not on iof == 1, which float rounding can miss.
            inside = ((lo[cand] >= win[:2]) & (hi[cand] <= win[2:])).all(1)
            keep = (iof >= iof_thr) | inside
            cand, inside = cand[keep], inside[keep]
        out.append((cand, ~inside if len(cand) else np.zeros(0, bool)))
    return out


# ----------------------------------------------------------------------------- one image
def _patch_plan(stem: str, width: int, height: int, cfg: SplitConfig) -> list[tuple[str, float, np.ndarray]]:
    """``(patch name, rate, window (x0, y0, x1, y1) in the rate-scaled image)`` for every patch."""
    plan = []
    if cfg.style == "mmrotate":
        sizes = [int(cfg.patch_size / r) for r in cfg.rates]
        gaps = [int(cfg.gap / r) for r in cfg.rates]
        seen = set()
        for w in sliding_windows(width, height, sizes, gaps, cfg.img_rate_thr):
            name = f"{stem}__{w[2] - w[0]}__{w[0]}___{w[1]}"
            if name not in seen:  # two rates can give the same window size
                seen.add(name)
                plan.append((name, 1.0, w))
    else:
        for rate in cfg.rates:
            w, h = (width, height) if rate == 1 else (round(width * rate), round(height * rate))  # as cv2.resize
            for left, up in devkit_windows(w, h, cfg.patch_size, cfg.gap):
                plan.append(
                    (
                        f"{stem}__{rate:g}__{left}___{up}",
                        rate,
                        np.array([left, up, left + cfg.patch_size, up + cfg.patch_size]),
                    )
                )
    return plan


def _write_atomic(path: Path, write) -> None:
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    write(tmp)
    os.replace(tmp, path)


def _imwrite(path: Path, img: np.ndarray) -> None:
    if not cv2.imwrite(str(path), img):
        raise ValueError(f"cannot write image {path}")


def _label_lines(
    ann: Annotations, rate: float, win: np.ndarray, scaled_size: tuple[int, int], cfg: SplitConfig, objects
) -> list[str]:
    names = ann.class_names
    if cfg.style == "mmrotate":
        idx, trunc = objects
        lines = []
        for i, t in zip(idx, trunc):
            coords = " ".join(str(np.float32(v)) for v in ann.polygons[i].astype(np.float64) - [win[0], win[1]] * 4)
            lines.append(f"{coords} {names[ann.labels[i]]} {2 if t else ann.difficulty[i]}")
        return lines
    left, up = int(win[0]), int(win[1])
    right, down = min(left + cfg.patch_size, scaled_size[0] - 1), min(up + cfg.patch_size, scaled_size[1] - 1)
    lines = []
    for poly, label, diff in zip(ann.polygons.astype(np.float64) * rate, ann.labels, ann.difficulty):
        res = devkit_cut(poly, left, up, right, down, cfg.patch_size, cfg.iof_thr)
        if res is not None:
            lines.append(" ".join(str(float(v)) for v in res[0]) + f" {names[label]} {2 if res[1] else diff}")
    return lines


def convert_depth(image: np.ndarray, config: SplitConfig, source: str) -> tuple[np.ndarray, str]:
    """The pixels to write and what was done to them: ``'8-bit'`` (as read), ``'16-bit kept'``, ``'16-bit scaled
    to 8-bit (/257)'`` or ``'16-bit stretched to 8-bit (2..98th percentile per band)'``.

    ``config.depth='auto'`` keeps 16 bits where the patch format holds them (PNG, TIFF) and scales to 8 bits
    otherwise (JPEG, BMP would clip every value above 255 to white).
    """
    if image.dtype == np.uint8:
        return image, "8-bit"
    if image.dtype != np.uint16:
        raise ValueError(f"{source}: {image.dtype} pixels; rdet split reads 8- and 16-bit images")
    mode = config.depth
    if mode == "auto":
        mode = "keep" if config.ext in DEEP_EXTS else "scale"
    if mode == "keep":
        return image, "16-bit kept"
    if mode == "scale":
        return np.rint(image / 257.0).astype(np.uint8), "16-bit scaled to 8-bit (/257)"
    x = image.reshape(image.shape[0], image.shape[1], -1).astype(np.float32)
    lo, hi = np.percentile(x[::4, ::4], 2, axis=(0, 1)), np.percentile(x[::4, ::4], 98, axis=(0, 1))
    out = np.clip(np.rint((x - lo) * (255.0 / np.maximum(hi - lo, 1))), 0, 255).astype(np.uint8)
    return out.reshape(image.shape), "16-bit stretched to 8-bit (2..98th percentile per band)"


def image_depth_note(image_path: str | Path, config: SplitConfig) -> str | None:
    """What :func:`convert_depth` will do to this image, from its header (``None`` for 8-bit images)."""
    h = read_header(image_path)
    if (h.bits or 8) <= 8:
        return None
    mode = config.depth if config.depth != "auto" else ("keep" if config.ext in DEEP_EXTS else "scale")
    return {
        "keep": f"{h.bits}-bit kept ({config.ext} holds 16 bits)",
        "scale": f"{h.bits}-bit scaled to 8-bit (/257)",
        "stretch": f"{h.bits}-bit stretched to 8-bit (2..98th percentile per band)",
    }[mode]


def split_image(
    image_path: str | Path,
    ann: Annotations | None,
    out_dir: str | Path,
    config: SplitConfig = SplitConfig(),
    resume: bool = True,
) -> tuple[list[str], int]:
    """Split one image into ``out_dir/images`` (+ ``out_dir/labelTxt`` when ``ann`` is given).

    Returns:
        (names of all its patches, number of patches skipped because they already existed).
    """
    image_path, out_dir = Path(image_path), Path(out_dir)
    img_dir, lab_dir = out_dir / "images", out_dir / "labelTxt"
    img_dir.mkdir(parents=True, exist_ok=True)
    if ann is not None:
        lab_dir.mkdir(parents=True, exist_ok=True)
    header = read_header(image_path)
    width, height = header.width, header.height
    check_pixels(str(image_path), width, height, config.max_pixels)  # before any decode
    plan = _patch_plan(image_path.stem, width, height, config)

    def done(name: str) -> bool:
        return (
            resume
            and (img_dir / (name + config.ext)).is_file()
            and (ann is None or (lab_dir / (name + ".txt")).is_file())
        )

    todo = [p for p in plan if not done(p[0])]
    if not todo:
        return [p[0] for p in plan], len(plan)
    image = decode_image(image_path, config.max_pixels)  # refuses truncated files instead of grey patches
    image, _ = convert_depth(image, config, str(image_path))
    pad = config.pad_rgb()[::-1]  # BGR, like the pixels of cv2
    if image.dtype == np.uint16:
        pad = tuple(v * 257 for v in pad)
    channels = 1 if image.ndim == 2 else image.shape[2]
    pad = pad[:channels] if channels <= 3 else pad + (255,) * (channels - 3)
    scaled: dict[float, np.ndarray] = {}
    objects = {}
    if ann is not None and config.style == "mmrotate":
        wins = np.stack([p[2] for p in todo])
        objects = dict(zip([p[0] for p in todo], window_objects(ann.polygons, wins, config.iof_thr)))
    for name, rate, win in todo:
        if rate not in scaled:
            # fx/fy (not a target size) as the devkit calls it: OpenCV then samples with exactly 1/rate.
            scaled[rate] = (
                image if rate == 1 else cv2.resize(image, None, fx=rate, fy=rate, interpolation=cv2.INTER_CUBIC)
            )
        src = scaled[rate]
        x0, y0, x1, y1 = (int(v) for v in win)
        patch = src[y0:y1, x0:x1]
        if config.padding and patch.shape[:2] != (y1 - y0, x1 - x0):
            full = np.empty((y1 - y0, x1 - x0) + patch.shape[2:], patch.dtype)
            full[...] = pad if channels > 1 else pad[0]
            full[: patch.shape[0], : patch.shape[1]] = patch
            patch = full
        if ann is not None:
            lines = _label_lines(ann, rate, win, (src.shape[1], src.shape[0]), config, objects.get(name))
            _write_atomic(img_dir / (name + config.ext), lambda p, im=patch: _imwrite(p, im))
            text = "".join(ln + "\n" for ln in lines)
            _write_atomic(lab_dir / (name + ".txt"), lambda p, t=text: p.write_text(t, encoding="utf-8"))
        else:
            _write_atomic(img_dir / (name + config.ext), lambda p, im=patch: _imwrite(p, im))
    return [p[0] for p in plan], len(plan) - len(todo)


def _split_one(job) -> tuple[str, int, int, bool, str | None]:
    image_path, label_path, out_dir, config, resume, classes, strict = job
    ann, missing = None, False
    if label_path is not None:
        if Path(label_path).is_file():
            ann = read_labels(label_path, classes=classes, strict=strict, image_path=image_path)
        else:  # DOTA's convention: an image without a label file has no objects
            from rdet.data.classes import DOTA2_0, resolve_classes  # noqa: PLC0415

            ann, missing = Annotations.empty(resolve_classes(classes, DOTA2_0), str(image_path)), True
    note = image_depth_note(image_path, config)
    names, skipped = split_image(image_path, ann, out_dir, config, resume)
    return str(image_path), len(names), skipped, missing, note


def split_dataset(
    image_dir: str | Path,
    label_dir: str | Path | None,
    out_dir: str | Path,
    config: SplitConfig = SplitConfig(),
    nproc: int = 1,
    resume: bool = True,
    classes=None,
    strict: bool = True,
    show_progress: bool = True,
) -> dict:
    """Split every image of ``image_dir`` (labels ``label_dir/<stem>.txt``, or ``None`` for test images)
    in ``nproc`` processes with a progress bar.

    Returns:
        ``{'images', 'patches', 'resumed' (patches already present), 'missing_labels' (image paths), 'depth'
        ({image path: bit-depth conversion} for images that are not 8-bit)}``.
    """
    image_dir = Path(image_dir)
    if not image_dir.is_dir():
        raise FileNotFoundError(f"image folder not found: {image_dir}")
    if label_dir is not None and not Path(label_dir).is_dir():
        raise FileNotFoundError(f"label folder not found: {label_dir}")
    images = sorted(p for p in image_dir.iterdir() if p.suffix in IMAGE_EXTS)
    jobs = [
        (
            p,
            None if label_dir is None else Path(label_dir) / (p.stem + ".txt"),
            Path(out_dir),
            config,
            resume,
            classes,
            strict,
        )
        for p in images
    ]
    report = {"images": len(images), "patches": 0, "resumed": 0, "missing_labels": [], "depth": {}}
    with Progress(len(jobs), desc="split", enabled=show_progress) as bar:
        if nproc > 1 and len(jobs) > 1:
            with get_context("spawn").Pool(min(nproc, len(jobs))) as pool:
                results = pool.imap_unordered(_split_one, jobs)
                for res in results:
                    _count(report, res, bar)
        else:
            for job in jobs:
                _count(report, _split_one(job), bar)
    return report


def _count(report: dict, res, bar: Progress) -> None:
    path, n, skipped, missing, note = res
    if note:
        report["depth"][path] = note
    report["patches"] += n
    report["resumed"] += skipped
    if missing:
        report["missing_labels"].append(path)
    bar.update()
    bar.set_postfix({"patches": report["patches"]})


__all__ = [
    "SplitConfig",
    "STYLES",
    "DEPTHS",
    "convert_depth",
    "image_depth_note",
    "sliding_windows",
    "devkit_windows",
    "window_objects",
    "clip_polygon",
    "devkit_cut",
    "split_image",
    "split_dataset",
]
