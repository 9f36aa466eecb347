"""Results out: DOTA Task1 folders, GeoJSON, JSON, and the annotated PNG of a scene's detections.

What ``rdet predict --output DIR`` writes (:func:`write_outputs` in :mod:`rdet.inference.predict`):

* ``Task1_<class>.txt``, one per class of the model (empty when a class has no detection): the official DOTA
  Task1 submission layout, ``<image_id> <score> x1 y1 x2 y2 x3 y3 x4 y4`` in scene pixels. The folder is *merged
  per image id* (:func:`update_task1_dir`): predicting more images into it adds their lines, predicting an image
  again replaces its lines, so ``rdet eval --results DIR`` and the DOTA server read it as it is.
* ``<image_id>.json``: the detections of one image (:func:`to_json`; ``rdet eval --detections`` reads one file or
  the folder), with the class list and how the scene was predicted.
* GeoJSON (RFC 7946, :func:`write_scene_geojson`): ``<image_id>.geojson`` in WGS84 longitude/latitude when the
  scene is georeferenced and the transform is possible (pyproj, the ``geo`` extra; a scene already in EPSG:4326
  needs none); otherwise ``<image_id>.pixels.geojson`` in pixel coordinates (x right, y down, origin at the
  top-left corner of the scene), marked ``"rdet": {"coordinate_space": "pixel"}``, and a note says why. Projected
  coordinates are never written under a lon/lat label, and the obsolete 2008 ``crs`` member is never written.
* ``<image_id>.png``: the scene with the detections drawn (:func:`draw_detections`).

No writer emits NaN or infinity (invalid JSON): a non-finite box or score is a ``ValueError`` naming the detection.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path

import cv2
import numpy as np
import torch

from rdet.boxes import obb2poly, poly2obb
from rdet.data.task1 import Task1Detections, read_task1
from rdet.detections import Detections

JSON_FORMAT = "rdet.detections/1"  # the "format" member of the per-image JSON
PIXEL_SUFFIX = ".pixels.geojson"
LONLAT_DIGITS = 8  # 1e-8 degrees is about 1 mm: more than any aerial image resolves


# ---------------------------------------------------------------------------------------------- helpers
def image_id_of(path: str | Path) -> str:
    """The DOTA image id of a file: its stem, whitespace replaced by ``_`` (Task1 lines are space-separated)."""
    out = "_".join(Path(path).stem.split())
    if not out:
        raise ValueError(f"cannot make an image id from {str(path)!r}")
    return out


def _polygons(dets: Detections) -> np.ndarray:
    return obb2poly(dets.boxes.detach().double().cpu()).numpy().reshape(-1, 8)


def _name(dets: Detections, label: int) -> str:
    return dets.class_names[label] if 0 <= label < len(dets.class_names) else str(label)


def check_finite(dets: Detections, what: str) -> None:
    """Raise ``ValueError`` naming ``what`` and the first detection whose box or score is NaN or infinite."""
    bad = ~(torch.isfinite(dets.boxes.detach().cpu()).all(1) & torch.isfinite(dets.scores.detach().cpu()))
    if bool(bad.any()):
        k = int(bad.nonzero()[0, 0])
        raise ValueError(
            f"{what}: detection {k} has a non-finite box or score ({dets.boxes[k].tolist()}, "
            f"{float(dets.scores[k])}); {int(bad.sum())} of {len(dets)} such detections"
        )


def _atomic_write(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file in the same folder (an interruption leaves the old file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _dumps(doc: dict, path: Path) -> str:
    try:
        return json.dumps(doc, allow_nan=False)
    except ValueError as e:  # defence in depth: check_finite catches detections; this catches anything else
        raise ValueError(f"{path}: refusing to write NaN or infinity into JSON ({e})") from None


# ---------------------------------------------------------------------------------------------- DOTA Task1
def task1_lines(dets: Detections, image_id: str) -> list[str]:
    """One line per detection, ``<image_id> <score> x1 y1 x2 y2 x3 y3 x4 y4 <class>``: the 10 Task1 fields, then the
    class name so one file holds every class (the app's single-file download; ``rdet predict`` writes the official
    per-class files with :func:`update_task1_dir`)."""
    if not image_id or any(c.isspace() for c in image_id):
        raise ValueError(f"image_id must be a non-empty name without spaces, got {image_id!r}")
    check_finite(dets, f"image {image_id}")
    out = []
    for poly, score, label in zip(_polygons(dets), dets.scores.tolist(), dets.labels.tolist()):
        out.append(f"{image_id} {score:.6f} " + " ".join(f"{v:.2f}" for v in poly) + f" {_name(dets, label)}")
    return out


def write_task1_txt(path: str | Path, dets: Detections, image_id: str) -> Path:
    """Write :func:`task1_lines` to ``path`` (one file, class as 11th field)."""
    lines = task1_lines(dets, image_id)
    return _atomic_write(Path(path), "\n".join(lines) + ("\n" if lines else ""))


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


def update_task1_dir(out_dir: str | Path, detections: Mapping[str, Detections]) -> list[Path]:
    """Merge ``{image_id: detections}`` into the ``Task1_<class>.txt`` files of ``out_dir``.

    Lines of the given image ids are replaced, lines of other images kept (several runs into one folder make one
    submission), and every class of the detections' ``class_names`` gets a file, empty if need be (the DOTA
    server expects one per class; it is also how the class list travels to ``rdet eval``). Each file is
    rewritten atomically, lines by decreasing score.

    Returns:
        the ``Task1_<class>.txt`` paths of the folder.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    existing = read_task1(out_dir)  # {class: Task1Detections}; a malformed file stops before anything changes
    names = list(existing)
    for dets in detections.values():
        names += [n for n in dets.class_names if n not in names]
    for name in names:
        if not name or len(name.split()) != 1 or "/" in name or "\\" in name:
            raise ValueError(f"class name {name!r} cannot be part of a Task1 file name (Task1_<class>.txt)")
    rows: dict[str, list[tuple[str, float, np.ndarray]]] = {n: [] for n in names}
    for name, old in existing.items():
        rows[name] += [
            (i, float(s), p) for i, s, p in zip(old.image_ids, old.scores, old.polygons) if i not in detections
        ]
    for image_id, dets in detections.items():
        if not image_id or any(c.isspace() for c in image_id):
            raise ValueError(f"image id must be a non-empty name without spaces, got {image_id!r}")
        check_finite(dets, f"image {image_id}")
        for poly, score, label in zip(_polygons(dets), dets.scores.tolist(), dets.labels.tolist()):
            rows[_name(dets, label)].append((image_id, float(score), poly))
    paths = []
    for name in names:
        got = sorted(rows[name], key=lambda r: -r[1])  # stable: equal scores keep file order
        det = Task1Detections([r[0] for r in got], np.array([r[1] for r in got]), np.array([r[2] for r in got]))
        text = "".join(
            f"{i} {s:.6f} " + " ".join(f"{v:.2f}" for v in p) + "\n"
            for i, s, p in zip(det.image_ids, det.scores, det.polygons.reshape(-1, 8))
        )
        paths.append(_atomic_write(out_dir / f"Task1_{name}.txt", text))
    return paths


# ---------------------------------------------------------------------------------------------- GeoJSON
def lonlat_transformer(georef) -> tuple[Callable[[np.ndarray], np.ndarray] | None, str]:
    """A function ``map xy [..., 2] -> lon/lat [..., 2]`` for ``georef``'s CRS, or ``None`` and the reason.

    EPSG:4326 scenes are already lon/lat (GeoTIFF model space is x = longitude, y = latitude); any other EPSG
    CRS needs pyproj (``pip install 'rdet[geo]'``).
    """
    if georef is None:
        return None, "the scene is not georeferenced"
    epsg = getattr(georef, "epsg", None)
    if epsg == 4326:
        return (lambda xy: np.asarray(xy, np.float64)), ""
    if not epsg:
        return None, "the scene's CRS has no EPSG code, so it cannot be converted to WGS84 lon/lat"
    try:
        from pyproj import Transformer
    except ImportError:
        return None, (
            f"the scene is in EPSG:{epsg} and converting to RFC 7946 WGS84 lon/lat needs pyproj "
            f"(pip install 'rdet[geo]')"
        )
    try:
        t = Transformer.from_crs(f"EPSG:{epsg}", "EPSG:4326", always_xy=True)
    except Exception as e:  # noqa: BLE001 - pyproj raises its own CRSError; reported as the reason
        return None, f"pyproj cannot transform EPSG:{epsg} to WGS84 ({e})"

    def to_lonlat(xy: np.ndarray) -> np.ndarray:
        xy = np.asarray(xy, np.float64)
        lon, lat = t.transform(xy[..., 0], xy[..., 1])
        return np.stack([np.asarray(lon), np.asarray(lat)], -1)

    return to_lonlat, ""


def _ccw(ring: np.ndarray) -> np.ndarray:
    """``ring [4, 2]`` ordered counter-clockwise in its own axes (RFC 7946 section 3.1.6, right-hand rule)."""
    x, y = ring[:, 0], ring[:, 1]
    area2 = float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))
    return ring if area2 >= 0 else ring[::-1]


def to_geojson(dets: Detections, georef=None, image_id: str | None = None) -> dict:
    """An RFC 7946 FeatureCollection: one Polygon per detection (closed ring of its 4 corners, counter-clockwise)
    with properties ``class``, ``label``, ``score``.

    With ``georef`` the coordinates are WGS84 longitude/latitude (``ValueError`` saying why when that is not
    possible: no EPSG code, or pyproj missing for a projected CRS); without it they are pixel coordinates, and the
    foreign member ``"rdet": {"coordinate_space": "pixel"}`` says so. No ``crs`` member (removed by RFC 7946).
    """
    check_finite(dets, f"image {image_id}" if image_id else "detections")
    polys = _polygons(dets).reshape(-1, 4, 2)
    meta: dict = {"image": image_id, "class_names": list(dets.class_names)}
    if georef is not None:
        to_lonlat, why = lonlat_transformer(georef)
        if to_lonlat is None:
            raise ValueError(f"no WGS84 GeoJSON for {image_id or 'these detections'}: {why}")
        polys = to_lonlat(georef.pixel_to_map(polys)) if len(polys) else polys
        if not np.isfinite(polys).all():
            raise ValueError(f"{image_id}: the transform to WGS84 gave non-finite coordinates (bad georeferencing?)")
        meta.update(coordinate_space="wgs84", source_crs=f"EPSG:{georef.epsg}", transform=list(georef.transform))
        digits = LONLAT_DIGITS
    else:
        meta.update(coordinate_space="pixel", axes="x right, y down, origin at the top-left corner, pixels")
        digits = 3
    features = []
    for poly, score, label in zip(polys, dets.scores.tolist(), dets.labels.tolist()):
        ring = [[round(float(x), digits), round(float(y), digits)] for x, y in _ccw(poly)]
        features.append(
            {
                "type": "Feature",
                "geometry": {"type": "Polygon", "coordinates": [ring + ring[:1]]},
                "properties": {"class": _name(dets, label), "label": int(label), "score": float(score)},
            }
        )
    return {"type": "FeatureCollection", "features": features, "rdet": meta}


def write_geojson(path: str | Path, dets: Detections, georef=None, image_id: str | None = None) -> Path:
    """Write :func:`to_geojson` to ``path`` (atomically). A ``georef`` that cannot be converted to WGS84 (no pyproj,
    no EPSG code) gives a pixel-space file, marked as such, and a warning saying why (:func:`write_scene_geojson`
    also names such a file ``.pixels.geojson``)."""
    path = Path(path)
    if georef is not None:
        to_lonlat, why = lonlat_transformer(georef)
        if to_lonlat is None:
            warnings.warn(f"{path} is in pixel coordinates: {why}", stacklevel=2)
            georef = None
    return _atomic_write(path, _dumps(to_geojson(dets, georef, image_id), path))


def write_scene_geojson(out_dir: str | Path, image_id: str, dets: Detections, georef=None) -> tuple[Path, str]:
    """``<image_id>.geojson`` in WGS84 lon/lat when possible, else ``<image_id>.pixels.geojson`` in pixel
    coordinates. Returns (path, note): the note says why a georeferenced scene got a pixel file ("" otherwise)."""
    out_dir = Path(out_dir)
    to_lonlat, why = lonlat_transformer(georef) if georef is not None else (None, "")
    if to_lonlat is not None:
        return write_geojson(out_dir / f"{image_id}.geojson", dets, georef, image_id), ""
    path = write_geojson(out_dir / f"{image_id}{PIXEL_SUFFIX}", dets, None, image_id)
    return path, (f"{path} is in pixel coordinates: {why}" if georef is not None else "")


def read_geojson(path: str | Path) -> Detections:
    """Read a :func:`write_geojson` file back to pixel-space detections (lon/lat files need pyproj and the
    ``rdet`` member's transform)."""
    doc = json.loads(Path(path).read_text(encoding="utf-8"))
    meta = doc.get("rdet", {})
    names = list(meta.get("class_names", []))
    space = meta.get("coordinate_space", meta.get("coordinates", "pixel"))
    to_pixels = None
    if space == "wgs84":
        from pyproj import Transformer

        t = Transformer.from_crs("EPSG:4326", meta["source_crs"], always_xy=True)
        a0, a1, a2, b0, b1, b2 = meta["transform"]
        det = a1 * b2 - a2 * b1

        def to_pixels(ring: np.ndarray) -> np.ndarray:
            x, y = (np.asarray(v) for v in t.transform(ring[:, 0], ring[:, 1]))
            dx, dy = x - a0, y - b0
            return np.stack([(b2 * dx - a2 * dy) / det, (-b1 * dx + a1 * dy) / det], -1)

    elif space != "pixel":
        raise ValueError(f"{path}: unknown coordinate space {space!r}")
    polys, scores, labels = [], [], []
    for i, f in enumerate(doc.get("features", [])):
        ring = np.asarray(f["geometry"]["coordinates"][0], np.float64)
        if ring.shape != (5, 2):
            raise ValueError(f"{path}: feature {i} is not a closed ring of 4 corners")
        if to_pixels is not None:
            ring = to_pixels(ring)
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


# ---------------------------------------------------------------------------------------------- JSON
def to_json(dets: Detections, info: dict | None = None, image_id: str | None = None) -> dict:
    """``{'format', 'image_id', 'class_names', 'detections': [{'box': [cx, cy, w, h, angle], 'polygon': [8],
    'score', 'label', 'class'}], 'info': {...}}`` (canonical boxes, scene pixels; ``rdet eval --detections`` reads
    it)."""
    check_finite(dets, f"image {image_id}" if image_id else "detections")
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
    return {
        "format": JSON_FORMAT,
        "image_id": image_id,
        "class_names": list(dets.class_names),
        "detections": rows,
        "info": info or {},
    }


def write_json(path: str | Path, dets: Detections, info: dict | None = None, image_id: str | None = None) -> Path:
    """Write :func:`to_json` to ``path`` (atomically; never NaN)."""
    path = Path(path)
    return _atomic_write(path, _dumps(to_json(dets, info, image_id), path))


def read_json(path: str | Path) -> Detections:
    """Read a :func:`write_json` file back."""
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
    pixels (for a shrunk scene, see ``Scene.read_all``)."""
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
        if not np.isfinite(polys[i]).all():
            continue  # nothing to draw; the JSON/GeoJSON writers refuse such a detection loudly
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
    "JSON_FORMAT",
    "PIXEL_SUFFIX",
    "image_id_of",
    "check_finite",
    "task1_lines",
    "write_task1_txt",
    "read_task1_txt",
    "update_task1_dir",
    "lonlat_transformer",
    "to_geojson",
    "write_geojson",
    "write_scene_geojson",
    "read_geojson",
    "to_json",
    "write_json",
    "read_json",
    "PALETTE",
    "class_color",
    "draw_detections",
    "write_png",
]
