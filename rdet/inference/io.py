"""Scenes in, results out: reading scenes of any size, georeferencing, and the output writers.

Reading (:func:`open_scene`) returns a :class:`Scene` with ``read(x, y, w, h) -> uint8 RGB [h, w, 3]``:

* PNG / JPEG / BMP: decoded whole with OpenCV (8-bit only; grayscale and RGBA become RGB).
* TIFF / GeoTIFF: with the optional ``tifffile`` package, only the tiles or strips a window touches are
  read from disk and decoded, so peak memory grows with the tile batch, not with the scene. Without
  ``tifffile`` the TIFF is decoded whole by OpenCV (a warning says so) and georeferencing is not read.
* a numpy array ``[H, W]`` / ``[H, W, 3]`` / ``[H, W, 4]`` uint8, **RGB** channel order.

16-bit or float imagery is rejected with a clear message (rdet's models are trained on 8-bit imagery;
convert it first, e.g. ``gdal_translate -ot Byte -scale``).

Georeferencing (:class:`GeoRef`) comes from the GeoTIFF tags ModelPixelScale + ModelTiepoint or
ModelTransformation, and the GeoKeys (EPSG code of the projected or geographic CRS). Pixel coordinates are
continuous (pixel ``(i, j)`` covers ``[i, i+1) x [j, j+1)``), which matches GeoTIFF's PixelIsArea; for
PixelIsPoint rasters the map coordinates refer to pixel centres and are shifted by half a pixel (as GDAL does).

Writers: :func:`write_task1_txt` (DOTA Task1 lines), :func:`write_geojson` (polygons in pixel coordinates, or
map coordinates + CRS when georeferenced), :func:`write_json`, and :func:`draw_detections` /
:func:`write_png` (the annotated image).
"""

from __future__ import annotations

import json
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from rdet.boxes import obb2poly, poly2obb
from rdet.detections import Detections

DECODED = (".png", ".jpg", ".jpeg", ".bmp")
TIFF = (".tif", ".tiff")
SUPPORTED = DECODED + TIFF


# ---------------------------------------------------------------------------------------------- georeferencing
@dataclass(frozen=True)
class GeoRef:
    """Affine pixel -> map transform (GDAL order) and CRS of a georeferenced scene.

    ``X = a0 + col * a1 + row * a2``, ``Y = b0 + col * b1 + row * b2`` with ``transform = (a0, a1, a2, b0, b1, b2)``
    and ``(col, row)`` continuous pixel coordinates (the top-left corner of the scene is ``(0, 0)``).
    """

    transform: tuple[float, float, float, float, float, float]
    epsg: int | None = None

    @property
    def crs(self) -> str | None:
        return f"EPSG:{self.epsg}" if self.epsg else None

    def pixel_to_map(self, xy: np.ndarray) -> np.ndarray:
        """``xy [..., 2]`` pixel -> map coordinates ``[..., 2]`` (float64)."""
        a0, a1, a2, b0, b1, b2 = self.transform
        xy = np.asarray(xy, np.float64)
        return np.stack([a0 + xy[..., 0] * a1 + xy[..., 1] * a2, b0 + xy[..., 0] * b1 + xy[..., 1] * b2], -1)

    def map_to_pixel(self, xy: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`pixel_to_map`."""
        a0, a1, a2, b0, b1, b2 = self.transform
        det = a1 * b2 - a2 * b1
        if det == 0:
            raise ValueError(f"GeoRef transform {self.transform} is not invertible")
        xy = np.asarray(xy, np.float64)
        dx, dy = xy[..., 0] - a0, xy[..., 1] - b0
        return np.stack([(b2 * dx - a2 * dy) / det, (-b1 * dx + a1 * dy) / det], -1)


# GeoTIFF tag codes and GeoKey ids (GeoTIFF 1.1, OGC 19-008r4)
TAG_PIXEL_SCALE, TAG_TIEPOINT, TAG_TRANSFORMATION, TAG_GEOKEYS = 33550, 33922, 34264, 34735
KEY_RASTER_TYPE, KEY_GEOGRAPHIC_CRS, KEY_PROJECTED_CRS = 1025, 2048, 3072
PIXEL_IS_POINT = 2


def parse_geokeys(values) -> dict[int, int]:
    """GeoKeyDirectory ``(version, revision, minor, count, [key, location, count, value] * count)`` ->
    ``{key id: value}`` for the keys stored inline (location 0, i.e. SHORT values)."""
    v = [int(x) for x in values]
    if len(v) < 4 or len(v) < 4 + 4 * v[3]:
        raise ValueError(f"GeoKeyDirectory has {len(v)} values, too few for {v[3] if len(v) > 3 else '?'} keys")
    return {v[4 + 4 * i]: v[7 + 4 * i] for i in range(v[3]) if v[5 + 4 * i] == 0}


def georef_from_tags(pixel_scale=None, tiepoint=None, transformation=None, geokeys=None) -> GeoRef | None:
    """Build a :class:`GeoRef` from raw GeoTIFF tag values (``None`` when the tags do not georeference)."""
    keys = parse_geokeys(geokeys) if geokeys is not None else {}
    if transformation is not None and len(transformation) >= 8:
        m = [float(x) for x in transformation]
        t = [m[3], m[0], m[1], m[7], m[4], m[5]]
    elif pixel_scale is not None and tiepoint is not None and len(tiepoint) >= 6 and len(pixel_scale) >= 2:
        sx, sy = float(pixel_scale[0]), float(pixel_scale[1])
        i, j, x, y = (float(tiepoint[k]) for k in (0, 1, 3, 4))
        t = [x - i * sx, sx, 0.0, y + j * sy, 0.0, -sy]
    else:
        return None
    if keys.get(KEY_RASTER_TYPE) == PIXEL_IS_POINT:  # map coordinates name pixel centres: shift by half a pixel
        t[0] -= 0.5 * (t[1] + t[2])
        t[3] -= 0.5 * (t[4] + t[5])
    epsg = keys.get(KEY_PROJECTED_CRS) or keys.get(KEY_GEOGRAPHIC_CRS)
    epsg = epsg if epsg and epsg != 32767 else None  # 32767: user-defined CRS, no EPSG code
    return GeoRef(tuple(t), epsg)


# ---------------------------------------------------------------------------------------------- scenes
def to_rgb8(pixels: np.ndarray, source: str, bgr: bool = False) -> np.ndarray:
    """``[H, W]``, ``[H, W, 1|3|4]`` uint8 -> ``[H, W, 3]`` uint8 RGB; other dtypes raise naming ``source``."""
    if pixels.dtype != np.uint8:
        bits = f"{pixels.dtype.itemsize * 8}-bit {pixels.dtype}"
        raise ValueError(
            f"{source}: {bits} image; rdet reads 8-bit imagery (uint8). Convert it first, e.g. "
            f"`gdal_translate -ot Byte -scale in.tif out.tif` or scale to 0-255 with numpy"
        )
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    if pixels.ndim != 3 or pixels.shape[2] not in (1, 3, 4):
        raise ValueError(f"{source}: expected an image [H, W], [H, W, 3] or [H, W, 4], got shape {pixels.shape}")
    if pixels.shape[2] == 1:
        return np.repeat(pixels, 3, axis=2)
    if bgr:
        return cv2.cvtColor(pixels, cv2.COLOR_BGRA2RGB if pixels.shape[2] == 4 else cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(pixels[..., :3])


class Scene:
    """A scene to run on: ``width``, ``height``, ``read(x, y, w, h)``; ``georef`` when georeferenced.

    ``reader`` says how pixels are read (``'array'``, ``'opencv'``, ``'tifffile-windows'``, ...).
    """

    source: str = "<array>"
    reader: str = "array"
    georef: GeoRef | None = None

    def __init__(self, image: np.ndarray, source: str = "<array>", reader: str = "array"):
        self.source, self.reader = source, reader
        self._image = to_rgb8(np.asarray(image), source)
        if self._image.shape[0] == 0 or self._image.shape[1] == 0:
            raise ValueError(f"{source}: zero-size image ({self._image.shape[1]} x {self._image.shape[0]})")
        self.height, self.width = self._image.shape[:2]

    def read(self, x: int, y: int, w: int, h: int) -> np.ndarray:
        """Pixels ``[y, y+h) x [x, x+w)`` as uint8 RGB ``[h, w, 3]`` (must lie inside the scene)."""
        self._check(x, y, w, h)
        return self._image[y : y + h, x : x + w]

    def read_all(self, max_side: int | None = None) -> tuple[np.ndarray, float]:
        """The whole scene, shrunk so its longer side is at most ``max_side``: (RGB image, factor applied)."""
        f = 1.0 if not max_side or max(self.width, self.height) <= max_side else max_side / max(self.width, self.height)
        if f == 1.0:
            return self.read(0, 0, self.width, self.height), 1.0
        out_w, out_h = max(round(self.width * f), 1), max(round(self.height * f), 1)
        out = np.zeros((out_h, out_w, 3), np.uint8)
        step = 4096  # shrink strip by strip so a huge windowed scene is never decoded whole
        for y in range(0, self.height, step):
            h = min(step, self.height - y)
            y0, y1 = round(y * f), round((y + h) * f)
            if y1 > y0:
                out[y0:y1] = cv2.resize(self.read(0, y, self.width, h), (out_w, y1 - y0), interpolation=cv2.INTER_AREA)
        return out, f

    def close(self) -> None:
        pass

    def __enter__(self) -> Scene:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _check(self, x: int, y: int, w: int, h: int) -> None:
        if x < 0 or y < 0 or w <= 0 or h <= 0 or x + w > self.width or y + h > self.height:
            raise ValueError(
                f"{self.source}: window x={x} y={y} w={w} h={h} outside the {self.width}x{self.height} scene"
            )


class TiffScene(Scene):
    """A TIFF read window by window with ``tifffile`` (only the tiles/strips a window touches are decoded)."""

    def __init__(self, path: Path):
        import tifffile

        self.source, self.reader = str(path), "tifffile-windows"
        try:
            self._tif = tifffile.TiffFile(path)
            page = self._tif.pages[0]
        except Exception as e:  # noqa: BLE001 - re-raised naming the file
            raise ValueError(f"{path}: cannot read as TIFF (corrupt or not a TIFF): {e}") from e
        self._page = page
        self.height, self.width = int(page.imagelength), int(page.imagewidth)
        if self.height == 0 or self.width == 0:
            raise ValueError(f"{path}: zero-size image ({self.width} x {self.height})")
        if page.dtype != np.uint8:
            self.close()
            to_rgb8(np.zeros((1, 1), page.dtype), str(path))  # raises the 8-bit message
        tags = {
            code: page.tags[code].value
            for code in (TAG_PIXEL_SCALE, TAG_TIEPOINT, TAG_TRANSFORMATION, TAG_GEOKEYS)
            if code in page.tags
        }
        self.georef = georef_from_tags(
            tags.get(TAG_PIXEL_SCALE), tags.get(TAG_TIEPOINT), tags.get(TAG_TRANSFORMATION), tags.get(TAG_GEOKEYS)
        )
        # Windowed reads need one interleaved image plane of gray or RGB(A) samples; anything else (planar
        # configuration, palettes, stacks) is decoded whole by tifffile.
        windowed = (
            page.planarconfig == 1
            and page.photometric in (1, 2, 6)
            and page.imagedepth == 1
            and len(page.dataoffsets) == int(np.prod(page.chunked))
            and page.samplesperpixel in (1, 3, 4)
        )
        self._full = None
        if not windowed:
            self.reader = "tifffile-whole"
            self._full = to_rgb8(page.asarray(), str(path))
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()

    def _segment(self, index: int) -> np.ndarray:
        """Decoded tile/strip ``index`` as ``[rows, cols, samples]`` (a small LRU cache: windows overlap)."""
        if index in self._cache:
            self._cache.move_to_end(index)
            return self._cache[index]
        page, fh = self._page, self._tif.filehandle
        offset, count = page.dataoffsets[index], page.databytecounts[index]
        with fh.lock:
            fh.seek(offset)
            data = fh.read(count) if count else None
        if data is None:  # sparse file: a missing segment is all zero
            seg = np.zeros(
                page.chunks[-3:] if page.is_tiled else (page.rowsperstrip, self.width, page.samplesperpixel), np.uint8
            )
        else:
            try:
                seg = page.decode(data, index, jpegtables=page.jpegtables, jpegheader=page.jpegheader)[0]
            except Exception as e:  # noqa: BLE001 - e.g. a codec needing `imagecodecs`; re-raised naming the file
                raise ValueError(
                    f"{self.source}: cannot decode TIFF segment {index} (compression {page.compression!s}): {e}"
                ) from e
            seg = seg.reshape(seg.shape[-3:])
        self._cache[index] = seg
        if len(self._cache) > 64:
            self._cache.popitem(last=False)
        return seg

    def read(self, x: int, y: int, w: int, h: int) -> np.ndarray:
        self._check(x, y, w, h)
        if self._full is not None:
            return self._full[y : y + h, x : x + w]
        page = self._page
        out = np.zeros((h, w, page.samplesperpixel), np.uint8)
        if page.is_tiled:
            th, tw = int(page.tilelength), int(page.tilewidth)
            across = -(-self.width // tw)
            cells = [
                (ty, tx) for ty in range(y // th, (y + h - 1) // th + 1) for tx in range(x // tw, (x + w - 1) // tw + 1)
            ]
            segments = [(ty * across + tx, ty * th, tx * tw) for ty, tx in cells]
        else:
            rps = min(int(page.rowsperstrip), self.height)
            segments = [(s, s * rps, 0) for s in range(y // rps, (y + h - 1) // rps + 1)]
        for index, top, left in segments:
            seg = self._segment(index)
            r0, r1 = max(y, top), min(y + h, top + seg.shape[0], self.height)
            c0, c1 = max(x, left), min(x + w, left + seg.shape[1], self.width)
            out[r0 - y : r1 - y, c0 - x : c1 - x] = seg[r0 - top : r1 - top, c0 - left : c1 - left]
        return to_rgb8(out, self.source)

    def close(self) -> None:
        if getattr(self, "_tif", None) is not None:
            self._tif.close()
            self._tif = None


def _decode(path: Path) -> np.ndarray:
    """Decode a file with OpenCV (unchanged bit depth and channels) or raise naming the cause."""
    data = np.fromfile(path, np.uint8)  # not cv2.imread: it fails silently on non-ASCII paths
    if data.size == 0:
        raise ValueError(f"{path}: empty file (0 bytes)")
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if image is None or image.size == 0:
        raise ValueError(f"{path}: cannot decode the image (corrupt file, or not a {path.suffix.lstrip('.').upper()})")
    return image


def open_scene(image_or_path) -> Scene:
    """A :class:`Scene` from a path (PNG/JPEG/BMP/TIFF) or a uint8 RGB numpy array.

    Raises:
        FileNotFoundError: no such file. ValueError: unsupported format, corrupt file, zero-size or non-8-bit image.
    """
    if isinstance(image_or_path, Scene):
        return image_or_path
    if isinstance(image_or_path, np.ndarray):
        return Scene(image_or_path)
    if isinstance(image_or_path, torch.Tensor):
        raise ValueError("pass scenes as a numpy array [H, W, 3] uint8 RGB or a file path, not a torch.Tensor")
    if not isinstance(image_or_path, (str, Path)):
        raise ValueError(f"image must be a path or a numpy array, got {type(image_or_path).__name__}")
    path = Path(image_or_path)
    if not path.is_file():
        raise FileNotFoundError(f"image not found: {path}")
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED:
        raise ValueError(
            f"{path}: unsupported format {suffix or '(no extension)'!r}; supported: {', '.join(SUPPORTED)}"
        )
    if suffix in TIFF:
        try:
            import tifffile  # noqa: F401 - optional extra
        except ImportError:
            warnings.warn(
                f"{path}: tifffile is not installed, so the whole TIFF is decoded with OpenCV (memory grows "
                f"with the scene) and georeferencing is ignored; `pip install tifffile` reads windows",
                stacklevel=2,
            )
        else:
            return TiffScene(path)
    return Scene(to_rgb8(_decode(path), str(path), bgr=True), str(path), "opencv")


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
