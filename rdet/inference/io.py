"""Scenes in, results out: reading scenes of any size (re-exported from :mod:`rdet.inference.scene`, with the
pixel budget and georeferencing), and the output writers.

Reading (:func:`open_scene`) returns a :class:`Scene` with ``read(x, y, w, h) -> uint8 RGB [h, w, 3]``; its size
is read from the header and checked against the pixel budget (``max_pixels``, :data:`DEFAULT_MAX_PIXELS`) before
anything is decoded (:class:`ImageTooLargeError`); :func:`image_size` reads the header only and
:func:`tile_count` says how many windows a tiling would take. See :mod:`rdet.inference.scene` for the readers
(OpenCV, tifffile windows incl. planar TIFF, rasterio), bit depth, bands and georeferencing (:class:`GeoRef`).

Writers: :func:`write_task1_txt` (DOTA Task1 lines), :func:`write_geojson` (polygons in pixel coordinates, or
map coordinates + CRS when georeferenced), :func:`write_json`, and :func:`draw_detections` /
:func:`write_png` (the annotated image).
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import torch

from rdet.boxes import obb2poly, poly2obb
from rdet.detections import Detections
from rdet.inference.scene import (  # noqa: F401 - the reading API, re-exported here
    DECODED,
    DEFAULT_MAX_PIXELS,
    SUPPORTED,
    TIFF,
    GeoRef,
    ImageTooLargeError,
    Scene,
    TiffScene,
    check_georef,
    georef_from_tags,
    image_size,
    open_scene,
    parse_geokeys,
    tile_count,
    to_rgb8,
)


# ---------------------------------------------------------------------------------------------- writers
def _polygons(dets: Detections) -> np.ndarray:
    return obb2poly(dets.boxes.detach().double().cpu()).numpy().reshape(-1, 8)


def _name(dets: Detections, label: int) -> str:
    return dets.class_names[label] if 0 <= label < len(dets.class_names) else str(label)


def task1_lines(dets: Detections, image_id: str) -> list[str]:
    """DOTA Task1 lines ``<image_id> <score> x1 y1 x2 y2 x3 y3 x4 y4 <class>`` (the 10 Task1 fields of the
    per-class submission files, then the class name so one file holds every class)."""
    if not image_id or any(c.isspace() for c in image_id):
        raise ValueError(f"image_id must be a non-empty name without spaces, got {image_id!r}")
    out = []
    for poly, score, label in zip(_polygons(dets), dets.scores.tolist(), dets.labels.tolist()):
        out.append(f"{image_id} {score:.6f} " + " ".join(f"{v:.2f}" for v in poly) + f" {_name(dets, label)}")
    return out


def write_task1_txt(path: str | Path, dets: Detections, image_id: str) -> Path:
    """Write :func:`task1_lines` to ``path``. Per-class submission files: ``rdet.data.task1.write_task1``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = task1_lines(dets, image_id)
    path.write_text("\n".join(lines) + ("\n" if lines else ""), encoding="utf-8")
    return path


def read_task1_txt(path: str | Path, class_names: list[str]) -> tuple[list[str], Detections]:
    """Read a :func:`write_task1_txt` file -> (image id per line, detections with boxes fitted to the polygons)."""
    ids, scores, polys, labels = [], [], [], []
    index = {n: i for i, n in enumerate(class_names)}
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 11 or parts[10] not in index:
            raise ValueError(
                f"{path}:{n}: expected 'image_id score x1 y1 ... x4 y4 class' with a class of "
                f"{class_names}, got {line[:80]!r}"
            )
        ids.append(parts[0]), scores.append(float(parts[1])), labels.append(index[parts[10]])
        polys.append([float(v) for v in parts[2:10]])
    p = torch.tensor(polys, dtype=torch.float64).reshape(-1, 8)
    return ids, Detections(
        poly2obb(p),
        torch.tensor(scores, dtype=torch.float64),
        torch.tensor(labels, dtype=torch.long),
        list(class_names),
    )


def to_geojson(dets: Detections, georef: GeoRef | None = None, image_id: str | None = None) -> dict:
    """A GeoJSON FeatureCollection: one Polygon per detection (closed ring of its 4 corners) with properties
    ``class``, ``label``, ``score``. Pixel coordinates, or map coordinates with a ``crs`` member (the
    GeoJSON 2008 form that GDAL and QGIS read) when ``georef`` is given."""
    polys = _polygons(dets).reshape(-1, 4, 2)
    if georef is not None:
        polys = georef.pixel_to_map(polys)
    features = []
    for poly, score, label in zip(polys, dets.scores.tolist(), dets.labels.tolist()):
        ring = [[float(x), float(y)] for x, y in poly] + [[float(poly[0, 0]), float(poly[0, 1])]]
        features.append(
            {
                "type": "Feature",
                "geometry": {"type": "Polygon", "coordinates": [ring]},
                "properties": {"class": _name(dets, label), "label": int(label), "score": float(score)},
            }
        )
    out: dict = {"type": "FeatureCollection", "features": features}
    out["rdet"] = {
        "image": image_id,
        "coordinates": "map" if georef is not None else "pixel",
        "class_names": list(dets.class_names),
    }
    if georef is not None:
        out["rdet"]["transform"] = list(georef.transform)
        if georef.epsg:
            out["crs"] = {"type": "name", "properties": {"name": f"urn:ogc:def:crs:EPSG::{georef.epsg}"}}
    return out


def write_geojson(
    path: str | Path, dets: Detections, georef: GeoRef | None = None, image_id: str | None = None
) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(to_geojson(dets, georef, image_id)), encoding="utf-8")
    return path


def read_geojson(path: str | Path) -> Detections:
    """Read a :func:`write_geojson` file back (map coordinates are mapped back to pixels with its transform)."""
    doc = json.loads(Path(path).read_text(encoding="utf-8"))
    meta = doc.get("rdet", {})
    names = list(meta.get("class_names", []))
    polys, scores, labels = [], [], []
    for i, f in enumerate(doc.get("features", [])):
        ring = np.asarray(f["geometry"]["coordinates"][0], np.float64)
        if ring.shape != (5, 2):
            raise ValueError(f"{path}: feature {i} is not a closed ring of 4 corners")
        if meta.get("coordinates") == "map":
            ring = GeoRef(tuple(meta["transform"])).map_to_pixel(ring)
        polys.append(ring[:4].reshape(8))
        scores.append(f["properties"]["score"])
        name = f["properties"]["class"]
        if name not in names:
            names.append(name)
        labels.append(names.index(name))
    p = torch.tensor(np.array(polys, np.float64).reshape(-1, 8))
    return Detections(
        poly2obb(p), torch.tensor(scores, dtype=torch.float64), torch.tensor(labels, dtype=torch.long), names
    )


def to_json(dets: Detections, info: dict | None = None) -> dict:
    """Plain JSON: ``{'class_names', 'detections': [{'box': [cx, cy, w, h, angle], 'polygon': [8], 'score',
    'label', 'class'}], 'info': {...}}`` (boxes in the canonical convention, scene pixels)."""
    polys = _polygons(dets)
    rows = [
        {
            "box": [float(v) for v in box],
            "polygon": [round(float(v), 3) for v in poly],
            "score": float(score),
            "label": int(label),
            "class": _name(dets, label),
        }
        for box, poly, score, label in zip(dets.boxes.tolist(), polys, dets.scores.tolist(), dets.labels.tolist())
    ]
    return {"class_names": list(dets.class_names), "detections": rows, "info": info or {}}


def write_json(path: str | Path, dets: Detections, info: dict | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(to_json(dets, info)), encoding="utf-8")
    return path


def read_json(path: str | Path) -> Detections:
    doc = json.loads(Path(path).read_text(encoding="utf-8"))
    rows = doc["detections"]
    return Detections(
        torch.tensor([r["box"] for r in rows], dtype=torch.float64).reshape(-1, 5),
        torch.tensor([r["score"] for r in rows], dtype=torch.float64),
        torch.tensor([r["label"] for r in rows], dtype=torch.long),
        list(doc["class_names"]),
    )


# ---------------------------------------------------------------------------------------------- drawing
# 20 well-separated RGB colours (Kelly's list, without black/white); class i gets PALETTE[i % 20].
PALETTE = (
    (255, 179, 0),
    (128, 62, 117),
    (255, 104, 0),
    (166, 189, 215),
    (193, 0, 32),
    (206, 162, 98),
    (0, 125, 52),
    (246, 118, 142),
    (0, 83, 138),
    (255, 122, 92),
    (83, 55, 122),
    (255, 142, 0),
    (179, 40, 81),
    (244, 200, 0),
    (127, 24, 13),
    (147, 170, 0),
    (89, 51, 21),
    (241, 58, 19),
    (35, 44, 22),
    (0, 161, 194),
)


def class_color(label: int) -> tuple[int, int, int]:
    return PALETTE[int(label) % len(PALETTE)]


def draw_detections(
    image: np.ndarray,
    dets: Detections,
    scores: bool = True,
    classes: list[str] | None = None,
    scale: float = 1.0,
    thickness: int | None = None,
) -> np.ndarray:
    """Draw detections on a copy of ``image [H, W, 3]`` uint8 RGB: thin polygons in class colours, optional
    ``class score`` labels. ``classes`` keeps only those class names; ``scale`` maps scene pixels to ``image``
    pixels (for a shrunk scene, see :meth:`Scene.read_all`)."""
    out = np.ascontiguousarray(image.copy())
    if thickness is None:
        thickness = max(1, round(max(out.shape[:2]) / 1500))
    font = 0.35 * thickness + 0.05
    polys = _polygons(dets).reshape(-1, 4, 2) * scale
    order = torch.argsort(dets.scores.cpu(), stable=True).tolist()  # best drawn last, on top
    for i in order:
        label = int(dets.labels[i])
        name = _name(dets, label)
        if classes is not None and name not in classes:
            continue
        color = class_color(label)
        pts = np.round(polys[i]).astype(np.int32)
        cv2.polylines(out, [pts], True, color, thickness, cv2.LINE_8)  # crisp: objects are small
        if scores:
            text = f"{name} {float(dets.scores[i]):.2f}"
            (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font, 1)
            x, y = int(pts[:, 0].min()), int(pts[:, 1].min())
            y = max(y, th + base)
            cv2.rectangle(out, (x, y - th - base), (x + tw, y), color, -1)
            ink = (0, 0, 0) if 0.299 * color[0] + 0.587 * color[1] + 0.114 * color[2] > 150 else (255, 255, 255)
            cv2.putText(out, text, (x, y - base), cv2.FONT_HERSHEY_SIMPLEX, font, ink, 1, cv2.LINE_AA)
    return out


def write_png(path: str | Path, image: np.ndarray) -> Path:
    """Write an RGB uint8 image as PNG (raises naming the path when OpenCV cannot write it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError(f"{path}: OpenCV could not encode the image {image.shape} {image.dtype}")
    buf.tofile(str(path))
    return path


__all__ = [
    "DEFAULT_MAX_PIXELS",
    "ImageTooLargeError",
    "image_size",
    "tile_count",
    "check_georef",
    "GeoRef",
    "parse_geokeys",
    "georef_from_tags",
    "to_rgb8",
    "Scene",
    "TiffScene",
    "open_scene",
    "SUPPORTED",
    "task1_lines",
    "write_task1_txt",
    "read_task1_txt",
    "to_geojson",
    "write_geojson",
    "read_geojson",
    "to_json",
    "write_json",
    "read_json",
    "PALETTE",
    "class_color",
    "draw_detections",
    "write_png",
]
