"""A ``torch.utils.data.Dataset`` of rotated-box annotations, its ``collate``, and image reading.

Images leave the data pipeline as uint8 RGB ``[3, H, W]``: normalisation and padding belong to the model
(``DenseDetector.preprocess_image``), the one place training, ``predict`` and the exported graph share.

Images are read with OpenCV as 8-bit RGB. Conversions are explicit: grayscale is repeated to 3 channels,
the alpha channel of RGBA is dropped, and 16-bit images are rejected unless ``uint16='scale'``
(value / 257: the full 16-bit range onto 0..255) or ``uint16='stretch'`` (per-channel min..max onto
0..255, for 11/12-bit satellite data that would look black when scaled) is chosen. EXIF orientation is
ignored, because label coordinates refer to the stored pixel grid.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np
import torch

from rdet.boxes import check_version, poly2obb
from rdet.data.annotations import Annotations
from rdet.data.classes import DOTA2_0, resolve_classes
from rdet.data.formats import IMAGE_EXTS, read_labels
from rdet.data.images import decode_image
from rdet.data.transforms import Sample

UINT16_MODES = ("error", "scale", "stretch")


def read_image(path: str | Path, uint16: str = "error", max_pixels: int | None = None) -> np.ndarray:
    """Read an image as RGB uint8 ``[H, W, 3]`` (module docstring for the conversions).

    Raises:
        FileNotFoundError: no such file. ImageTooLargeError: over the pixel budget (``rdet.data.images``, checked
            from the header). ValueError: undecodable or truncated file, unsupported depth, or 16-bit data with
            ``uint16='error'``; every message names the file.
    """
    if uint16 not in UINT16_MODES:
        raise ValueError(f"uint16 must be one of {UINT16_MODES}, got {uint16!r}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image not found: {path}")
    img = decode_image(path, max_pixels)
    if img.dtype == np.uint16:
        if uint16 == "error":
            raise ValueError(
                f'{path} is a 16-bit image; pass uint16="scale" (value/257) or "stretch" '
                "(min..max per channel) to convert it to 8 bits"
            )
        if uint16 == "scale":
            img = np.rint(img / 257.0).astype(np.uint8)
        else:
            x = img.reshape(img.shape[0], img.shape[1], -1).astype(np.float32)
            lo, hi = x.min((0, 1)), x.max((0, 1))
            img = np.rint((x - lo) * (255.0 / np.maximum(hi - lo, 1))).astype(np.uint8).reshape(img.shape)
    elif img.dtype != np.uint8:
        raise ValueError(f"{path}: unsupported pixel type {img.dtype} (8-bit, or 16-bit with uint16=..., only)")
    if img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 1):
        return np.repeat(img.reshape(img.shape[0], img.shape[1], 1), 3, axis=2)
    if img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)  # alpha dropped
    if img.shape[2] == 3:
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    raise ValueError(f"{path}: unsupported channel count {img.shape[2]}")


class RotatedDataset(torch.utils.data.Dataset):
    """Images with oriented-box labels.

    Build it from folders (``RotatedDataset('split/images', 'split/labelTxt')``: one label file per image,
    same stem; an image without a label file has no objects) or from records
    (``RotatedDataset(annotations=[...])``, each with its ``image_path``).

    Args:
        image_dir, label_dir: folders (``label_dir`` defaults to the image folder's sibling ``labelTxt``).
        annotations: records instead of folders.
        classes, format, strict: passed to ``read_labels`` (class list: DOTA v2.0 by default for DOTA).
        version: angle version of the returned boxes (``'oc'``, ``'le90'``, ``'le135'``).
        transforms: called as ``transforms(sample, rng)`` (``rdet.data.transforms``), before the box fit.
        uint16: conversion of 16-bit images (``read_image``).
        filter_empty: drop images without objects (training); their count is in ``num_empty``.
        seed: base of the per-item random generators (``set_epoch`` changes them each epoch).

    Items are dicts: ``image`` (Tensor[3, H, W] uint8 RGB), ``boxes`` (Tensor[N, 5] float32, regularised to
    ``version``), ``labels`` (Tensor[N] int64), ``polygons`` (Tensor[N, 8] float32), ``difficult``
    (Tensor[N] bool), ``image_id`` (file stem), ``meta`` (path, original size, applied transforms).
    """

    def __init__(
        self,
        image_dir: str | Path | None = None,
        label_dir: str | Path | None = None,
        *,
        annotations: Sequence[Annotations] | None = None,
        classes=None,
        format: str | None = None,
        version: str = "le90",
        transforms: Callable | None = None,
        uint16: str = "error",
        strict: bool = True,
        filter_empty: bool = False,
        seed: int = 0,
    ):
        check_version(version)
        if (image_dir is None) == (annotations is None):
            raise ValueError("give either image_dir (with optional label_dir) or annotations")
        if annotations is None:
            assert image_dir is not None  # checked above
            annotations = self._scan(Path(image_dir), label_dir, classes, format, strict)
        else:
            for a in annotations:
                if a.image_path is None:
                    raise ValueError(f"{a.label_path}: annotation without image_path")
        self.num_empty = sum(len(a) == 0 for a in annotations)
        self.annotations = [a for a in annotations if len(a) or not filter_empty]
        self.class_names = list(self.annotations[0].class_names) if self.annotations else []
        self.version, self.transforms, self.uint16 = version, transforms, uint16
        self.seed, self.epoch = seed, 0

    @staticmethod
    def _scan(image_dir: Path, label_dir, classes, format, strict) -> list[Annotations]:
        if not image_dir.is_dir():
            raise FileNotFoundError(f"image folder not found: {image_dir}")
        label_dir = Path(label_dir) if label_dir is not None else image_dir.parent / "labelTxt"
        if not label_dir.is_dir():
            raise FileNotFoundError(f"label folder not found: {label_dir}")
        images = sorted(p for p in image_dir.iterdir() if p.suffix in IMAGE_EXTS)
        if not images:
            raise ValueError(f"no images ({', '.join(IMAGE_EXTS[:6])}) in {image_dir}")
        pairs = []
        for img in images:
            lab = [label_dir / (img.stem + e) for e in (".txt", ".xml") if (label_dir / (img.stem + e)).is_file()]
            rec = read_labels(lab[0], format, classes, strict=strict, image_path=img) if lab else None
            pairs.append((img, rec))
        read = [r for _, r in pairs if r is not None]
        names = read[0].class_names if read else resolve_classes(classes, DOTA2_0)
        out = []
        for img, rec in pairs:
            if rec is None:  # DOTA's convention: an image without a label file has no objects
                rec = Annotations.empty(names, str(img))
            elif rec.class_names != names:
                raise ValueError(f"{rec.label_path}: class list differs from {read[0].label_path}; pass classes=")
            out.append(rec)
        return out

    def __len__(self) -> int:
        return len(self.annotations)

    def set_epoch(self, epoch: int) -> None:
        """Change the random augmentations of every item (call once per epoch)."""
        self.epoch = int(epoch)

    def __getitem__(self, index: int) -> dict:
        ann = self.annotations[index]
        image = read_image(str(ann.image_path), self.uint16)  # set for every item (__init__ checks)
        h, w = image.shape[:2]
        if ann.width is not None and (ann.width, ann.height) != (w, h):
            raise ValueError(f"{ann.image_path}: image is {w}x{h} but its labels say {ann.width}x{ann.height}")
        sample = Sample(image, ann.polygons.astype(np.float64), ann.labels.copy(), ann.difficult.copy())
        if self.transforms is not None:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            sample = self.transforms(sample, rng)
        img = sample.image
        if img.dtype != np.uint8:
            raise ValueError(f"transforms returned a {img.dtype} image; they must keep uint8 RGB")
        polys = torch.from_numpy(np.ascontiguousarray(sample.polygons, dtype=np.float64)).reshape(-1, 8)
        return dict(
            image=torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))),
            boxes=poly2obb(polys, self.version).float(),
            labels=torch.from_numpy(sample.labels.astype(np.int64)),
            polygons=polys.float(),
            difficult=torch.from_numpy(sample.difficult.astype(bool)),
            image_id=Path(str(ann.image_path)).stem,
            meta=dict(image_path=ann.image_path, ori_size=(w, h), size=(img.shape[1], img.shape[0]), **sample.meta),
        )


def collate(batch: list[dict]) -> dict:
    """Group items of ``RotatedDataset`` into a batch, one entry per image (no padding: the model pads).

    Returns:
        dict: ``images`` (list of B uint8 ``Tensor[3, H_i, W_i]``) and ``targets`` (list of B dicts:
        ``boxes`` [N, 5], ``labels`` [N], ``polygons`` [N, 8], ``difficult`` [N], ``image_id``, ``meta``).
    """
    if not batch:
        raise ValueError("collate got an empty batch")
    keys = ("boxes", "labels", "polygons", "difficult", "image_id", "meta")
    return dict(images=[b["image"] for b in batch], targets=[{k: b[k] for k in keys} for b in batch])
