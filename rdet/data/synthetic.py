"""Synthetic aerial scenes: a fast, learnable oriented-detection task for CPU tests and examples.

Four classes with distinct shapes and aspect ratios, at random angles on a textured ground (DOTA class
names, so the labels are valid DOTA labelTxt; the list is ``rdet.data.classes.SYNTHETIC``):

============== ====================================== =============== ===================
class          shape                                  w : h           angle
============== ====================================== =============== ===================
plane          cross: fuselage, wings, tail plane     1 : 0.75-0.9    any
ship           hull with a pointed bow, deck house    4-6 : 1         any
small-vehicle  rectangle with a dark windshield        2 : 1           any
storage-tank   disc with a rim                        1 : 1           0 (a disc has none)
============== ====================================== =============== ===================

Each box is the exact enclosing rectangle of its shape (length along the box ``w`` axis). This is a
stand-in for quick experiments, never a substitute for the real samples in ``data/samples``.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import torch

from rdet.boxes import obb2poly
from rdet.data.annotations import Annotations
from rdet.data.classes import SYNTHETIC
from rdet.data.formats import write_dota

_SHIFT = 4  # cv2 drawing with 4 fractional bits: sub-pixel accurate, anti-aliased edges
# Per class: (length range as a fraction of the image size, h / w range).
_SIZES = {
    0: ((0.11, 0.19), (0.75, 0.9)),
    1: ((0.16, 0.27), (0.17, 0.25)),
    2: ((0.04, 0.065), (0.45, 0.55)),
    3: ((0.06, 0.12), (1.0, 1.0)),
}


def _ground(rng: np.random.Generator, size: int) -> np.ndarray:
    """Textured ground: low-frequency colour fields, fine grain and a few roads, uint8 RGB."""
    base = np.array(rng.choice([(96, 108, 72), (120, 112, 90), (70, 92, 104), (104, 100, 96)]), np.float32)
    # Mostly brightness variation with a little colour, like fields and soil seen from above.
    coarse = rng.normal(0, 16, (6, 6, 1)) + rng.normal(0, 5, (6, 6, 3))
    low = cv2.resize(coarse.astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
    mid = cv2.resize(rng.normal(0, 8, (24, 24, 1)).astype(np.float32), (size, size), interpolation=cv2.INTER_LINEAR)
    img = base + low + mid[..., None] + rng.normal(0, 5, (size, size, 3)).astype(np.float32)
    img = np.clip(img, 0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(0, 3))):  # roads: long straight dark-grey bands
        p = rng.uniform(0, size, 2)
        d = np.array([math.cos(a := rng.uniform(0, math.pi)), math.sin(a)]) * size * 2
        shade = int(rng.integers(55, 80))
        cv2.line(img, _pt(p - d), _pt(p + d), (shade, shade, shade), int(rng.integers(3, 7)), cv2.LINE_AA, _SHIFT)
    return img


def _pt(p) -> tuple[int, int]:
    return int(round(p[0] * (1 << _SHIFT))), int(round(p[1] * (1 << _SHIFT)))


def _poly(img: np.ndarray, local: np.ndarray, box: np.ndarray, color) -> None:
    """Fill a polygon given in box-local coordinates (u along w, v along h, origin at the centre)."""
    c, s = math.cos(box[4]), math.sin(box[4])
    pts = box[:2] + local @ np.array([[c, s], [-s, c]])
    cv2.fillPoly(img, [np.round(pts * (1 << _SHIFT)).astype(np.int32)], color, cv2.LINE_AA, _SHIFT)


def _rect(u0, v0, u1, v1) -> np.ndarray:
    return np.array([[u0, v0], [u1, v0], [u1, v1], [u0, v1]], np.float64)


def _draw(img: np.ndarray, label: int, box: np.ndarray, rng: np.random.Generator) -> None:
    w, h = box[2] / 2, box[3] / 2
    jitter = lambda c: tuple(int(np.clip(v + rng.integers(-12, 13), 0, 255)) for v in c)  # noqa: E731
    if label == 0:  # plane: fuselage along u, wings and tail plane along v
        body = jitter((225, 228, 232))
        _poly(img, _rect(-w, -0.09 * w, w, 0.09 * w), box, body)
        _poly(
            img,
            np.array(
                [
                    [0.25 * w, -0.08 * w],
                    [-0.15 * w, -h],
                    [-0.4 * w, -h],
                    [-0.2 * w, 0],
                    [-0.4 * w, h],
                    [-0.15 * w, h],
                    [0.25 * w, 0.08 * w],
                ]
            ),
            box,
            body,
        )
        _poly(img, _rect(-w, -0.35 * h, -0.8 * w, 0.35 * h), box, body)
    elif label == 1:  # ship: pointed bow at +u, darker deck house
        hull = np.array([[-w, -h], [w - 1.6 * h, -h], [w, 0], [w - 1.6 * h, h], [-w, h]])
        _poly(img, hull, box, jitter((170, 172, 178)))
        _poly(img, _rect(-0.6 * w, -0.55 * h, -0.1 * w, 0.55 * h), box, jitter((90, 92, 100)))
    elif label == 2:  # small vehicle: coloured body, dark windshield near the front
        colors = [(200, 40, 40), (40, 60, 190), (230, 230, 230), (30, 30, 30), (210, 200, 60)]
        _poly(img, _rect(-w, -h, w, h), box, jitter(colors[int(rng.integers(len(colors)))]))
        _poly(img, _rect(0.2 * w, -0.8 * h, 0.5 * w, 0.8 * h), box, (20, 24, 30))
    else:  # storage tank: light disc, dark rim
        centre, r = _pt(box[:2]), int(round(w * (1 << _SHIFT)))
        cv2.circle(img, centre, r, jitter((110, 110, 105)), -1, cv2.LINE_AA, _SHIFT)
        cv2.circle(img, centre, int(r * 0.86), jitter((215, 215, 205)), -1, cv2.LINE_AA, _SHIFT)


def make_synthetic_scene(
    rng: np.random.Generator,
    size: int = 256,
    objects: tuple[int, int] = (3, 10),
    class_ids: tuple[int, ...] = (0, 1, 2, 3),
) -> tuple[np.ndarray, Annotations]:
    """One scene: ``(image uint8 RGB [size, size, 3], Annotations)`` with ``objects[0]..objects[1]`` objects
    (fewer if they do not fit without overlapping) of the classes ``class_ids`` (indices into SYNTHETIC)."""
    img = _ground(rng, size)
    n = int(rng.integers(objects[0], objects[1] + 1))
    boxes: list[np.ndarray] = []
    labels: list[int] = []
    for _ in range(n):
        label = int(rng.choice(class_ids))
        (l0, l1), (r0, r1) = _SIZES[label]
        length = rng.uniform(l0, l1) * size
        angle = 0 if label == 3 else rng.uniform(-math.pi, math.pi)
        box = np.array([0, 0, length, length * rng.uniform(r0, r1), angle])
        radius = math.hypot(box[2], box[3]) / 2
        for _try in range(30):  # rejection sampling: whole box inside, no overlap with earlier objects
            box[:2] = rng.uniform(radius + 1, size - radius - 1, 2)
            if all(math.dist(box[:2], b[:2]) > radius + math.hypot(b[2], b[3]) / 2 + 2 for b in boxes):
                boxes.append(box), labels.append(label)
                _draw(img, label, box, rng)
                break
    polys = obb2poly(torch.tensor(np.array(boxes, np.float64)).reshape(-1, 5)).numpy()
    ann = Annotations(None, size, size, polys, np.array(labels, np.int64), list(SYNTHETIC), np.zeros(len(labels), bool))
    return img, ann


def make_synthetic_dataset(
    out_dir: str | Path,
    n_images: int,
    size: int = 256,
    seed: int = 0,
    objects: tuple[int, int] = (3, 10),
    class_ids: tuple[int, ...] = (0, 1, 2, 3),
    prefix: str = "syn",
) -> list[Annotations]:
    """Write ``n_images`` scenes as ``out_dir/images/<prefix>_00000.png`` + DOTA ``out_dir/labelTxt/*.txt``.

    Image ``i`` depends only on ``(seed, i, size, objects, class_ids)``, so a larger dataset extends a smaller
    one. Returns the records (with ``image_path`` set).
    """
    if n_images < 0 or size < 32:
        raise ValueError(f"need n_images >= 0 and size >= 32, got {n_images}, {size}")
    out_dir = Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    (out_dir / "labelTxt").mkdir(parents=True, exist_ok=True)
    records = []
    for i in range(n_images):
        img, ann = make_synthetic_scene(np.random.default_rng([seed, i]), size, objects, class_ids)
        stem = f"{prefix}_{i:05d}"
        ann.image_path = str(out_dir / "images" / f"{stem}.png")
        ann.label_path = str(out_dir / "labelTxt" / f"{stem}.txt")
        if not cv2.imwrite(ann.image_path, cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 1]):
            raise ValueError(f"cannot write {ann.image_path}")
        write_dota(ann.label_path, ann, header=False)
        records.append(ann)
    return records


QUICKSTART = "rotated-retinanet-rbox-le90_r18_fpn_kld-stable_synthetic"


def write_synthetic_data(
    config=QUICKSTART,
    out_dir: str | Path | None = None,
    n_train: int = 200,
    n_val: int = 50,
    size: int = 256,
    seed: int = 0,
) -> dict[str, Path]:
    """The synthetic dataset of the quickstart configs (``rdet synth``): ``n_train`` scenes (seed ``seed``) and
    ``n_val`` scenes (seed ``seed + 1``), each folder with ``images/`` and ``labelTxt/``.

    Args:
        config: a config (file, shipped name or :class:`rdet.config.Config`) whose ``data.train_images`` /
            ``data.val_images`` folders receive the scenes (their parent folders get ``images`` and ``labelTxt``).
        out_dir: write ``out_dir/train`` and ``out_dir/val`` instead.

    Returns:
        ``{'train': folder, 'val': folder}``.
    """
    if out_dir is not None:
        folders = {"train": Path(out_dir) / "train", "val": Path(out_dir) / "val"}
    else:
        from rdet.config import Config, find_config, load_config  # noqa: PLC0415 - data must not need configs

        cfg = config if isinstance(config, Config) else load_config(find_config(config))
        folders = {"train": Path(cfg.data.train_images).parent, "val": Path(cfg.data.val_images).parent}
    make_synthetic_dataset(folders["train"], n_train, size=size, seed=seed)
    make_synthetic_dataset(folders["val"], n_val, size=size, seed=seed + 1)
    return folders
