"""Label readers: DOTA labelTxt, YOLO-OBB, DIOR-R XML, HRSC2016 XML (writers: :mod:`rdet.data.writers`,
``rdet convert``: :mod:`rdet.data.convert`).

Every reader returns an :class:`~rdet.data.annotations.Annotations` (polygons ``[N, 8]`` in pixels).

Formats
-------
``dota``      ``x1 y1 x2 y2 x3 y3 x4 y4 class [difficult]`` per line, optional ``imagesource:``/``gsd:``
              header lines (v1.0, v1.5 and v2.0 differ only in their class lists, ``rdet.data.classes``).
              With ``classes=None`` the v2.0 list is used: it contains v1.0 and v1.5, with the same ids.
``yolo-obb``  ``class_id x1 y1 ... x4 y4`` normalised by the image width/height (Ultralytics). The class
              names come from ``classes`` (a list, or a ``dota8.yaml``-like / one-per-line file), else from the
              ``classes.yaml``/``data.yaml`` found beside the labels or up to 3 folders above; the image size
              from ``image_size`` or from the header of the matching image. Coordinates must lie in [0, 1];
              objects cut by the image border may reach ``YOLO_MARGIN`` (0.25) beyond (DOTA8 has -0.07 and
              1.04), and must overlap the image: pixel coordinates are refused, not scaled.
``dior-r``    VOC-style XML, one ``<object>`` per box with ``<robndbox>`` corners ``x_left_top`` ...
``hrsc``      HRSC2016 XML: ``mbox_cx, mbox_cy, mbox_w, mbox_h, mbox_ang``. ``mbox_ang`` is in radians and
              measured like ours (from +x towards +y, y down: positive = clockwise on screen), which we
              checked on annotation 100000006: its bow point ``header_x/y`` lies on the box's long axis
              only with this sign. So HRSC boxes *are* rdet boxes; the polygon is ``obb2poly`` of them.

Bad input
---------
Every value is validated where it is read (:mod:`rdet.data._parse`): numbers must be ASCII decimal text
(``١٠``, ``１０``, ``1_0``, ``inf``, ``nan`` are refused), finite and in range (coordinates within 1e9 px,
``difficult`` an integer in [0, 255], XML image sizes positive integers -- checked before they are used), and
line numbers count ``\n``/``\r\n`` only. ``strict=True`` (default): a malformed entry (wrong field count, bad
value, unknown class, polygon with zero area) raises ``ValueError('<file>:<line>: <reason>: <text>')`` (XML:
``<file>:object <k>: ...`` or ``<file>:size: ...``). ``strict=False`` skips such entries, lists every one in
``Annotations.meta['skipped']`` and warns once per call with all of them; ``read_label_dir`` also skips (and
lists) files that cannot be read at all. Nothing is dropped silently.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import torch

from rdet.boxes import obb2poly, yolo_obb_to_poly
from rdet.data import _parse as P
from rdet.data import classes as C
from rdet.data.annotations import Annotations
from rdet.data.images import image_size
from rdet.data.writers import remap_classes, write_dota, write_yolo_obb  # noqa: F401 - re-exported

FORMATS = ("dota", "yolo-obb", "dior-r", "hrsc")
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".PNG", ".JPG", ".JPEG", ".TIF", ".TIFF", ".BMP")
_LABEL_DIRS = ("labelTxt", "labels", "annfiles", "Annotations", "labelTxt-v1.0", "labelTxt-v1.5", "labelTxt-v2.0")
_IMAGE_DIRS = ("images", "JPEGImages", "AllImages", "JPEGImages-trainval", "JPEGImages-test")
_HEADER_KEYS = ("imagesource", "gsd")
MAX_DIFFICULT = 255  # DOTA writes 0/1 and the splitter 2; larger values are kept as written, up to this
MAX_SIDE = 1 << 31  # image sides in XML size fields
YOLO_MARGIN = 0.25  # normalised coordinates may reach this far outside [0, 1] (objects cut by the border)


def _degenerate(poly: np.ndarray) -> bool:
    """True when the 4 points are (numerically) on one line, i.e. every enclosing shape has zero area."""
    p = poly.reshape(4, 2) - poly.reshape(4, 2).mean(0)
    tri = [(1, 2, 3), (0, 2, 3), (0, 1, 3), (0, 1, 2)]
    areas = [
        abs((p[b, 0] - p[a, 0]) * (p[c, 1] - p[a, 1]) - (p[c, 0] - p[a, 0]) * (p[b, 1] - p[a, 1])) for a, b, c in tri
    ]
    return max(areas) <= 1e-9 * max(1.0, float(np.abs(p).max()) ** 2)


def _decode(data: bytes, source: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ValueError(f"{source}: not UTF-8 text ({e.reason} at byte {e.start})") from None


def _header_value(key: str, value: str, meta: dict) -> None:
    """DOTA header lines ``imagesource:...`` and ``gsd:...`` (``gsd:null`` for an unknown resolution)."""
    if key == "gsd":
        v = value.strip()
        meta["gsd"] = None if v.lower() in ("null", "none", "") else P.parse_float(v, "gsd", 0.0, 1e6)
    else:
        meta[key] = value.strip()


def _dota_line(toks: list[str], index: C.ClassIndex, names: list[str]) -> tuple[np.ndarray, int, int]:
    if len(toks) not in (9, 10):
        raise ValueError(f"expected 9 or 10 fields (8 coordinates, class, [difficult]), got {len(toks)}")
    poly = np.array([P.parse_float(t, f"coordinate {i + 1}") for i, t in enumerate(toks[:8])])
    label = index.get(toks[8])
    if label is None:
        raise ValueError(f"unknown class {toks[8]!r} (classes: {', '.join(names)})")
    diff = P.parse_int(toks[9], "difficult", 0, MAX_DIFFICULT) if len(toks) == 10 else 0
    if _degenerate(poly):
        raise ValueError("degenerate polygon (zero area)")
    return poly, label, diff


def parse_dota(text: str, source: str = "<string>", classes=None, strict: bool = True) -> Annotations:
    """Parse DOTA labelTxt text (see the module docstring). Image path and size are left ``None``."""
    names = C.resolve_classes(classes, C.DOTA2_0)
    index, issues = C.ClassIndex(names), P.Issues(source, strict)
    polys, labels, diffs = [], [], []
    meta: dict = {}
    for lineno, line in enumerate(P.lines(text), 1):
        toks = P.tokens(line)
        if not toks:
            continue
        key = line.split(":", 1)[0].strip().lower()
        try:
            if ":" in line and key in _HEADER_KEYS:
                _header_value(key, line.split(":", 1)[1], meta)
                continue
            poly, label, diff = _dota_line(toks, index, names)
        except ValueError as e:
            issues.bad(lineno, str(e), line)
            continue
        polys.append(poly), labels.append(label), diffs.append(diff)
    meta["skipped"] = issues.skipped
    return _record(polys, labels, diffs, names, meta, label_path=source)


def _yolo_line(toks: list[str], n_classes: int) -> tuple[np.ndarray, int]:
    if len(toks) != 9:
        raise ValueError(f"expected 9 fields (class id, 8 normalised coordinates), got {len(toks)}")
    label = P.parse_int(toks[0], "class id", 0, n_classes - 1)
    lo, hi = -YOLO_MARGIN, 1 + YOLO_MARGIN
    try:
        poly = np.array([P.parse_float(t, f"coordinate {i + 1}", lo, hi) for i, t in enumerate(toks[1:])])
    except ValueError as e:
        if "must lie in" in str(e):
            raise ValueError(
                f"{e}: YOLO-OBB coordinates are normalised to [0, 1] (objects cut by the image border may "
                f"reach {YOLO_MARGIN} beyond); pixel coordinates? convert them with rdet convert --to yolo-obb"
            ) from None
        raise
    xs, ys = poly[0::2], poly[1::2]
    if xs.max() <= 0 or xs.min() >= 1 or ys.max() <= 0 or ys.min() >= 1:
        raise ValueError("the object lies wholly outside the image ([0, 1] x [0, 1])")
    return poly, label


def parse_yolo_obb(
    text: str, width: float, height: float, classes, source: str = "<string>", strict: bool = True
) -> Annotations:
    """Parse YOLO-OBB text; ``classes`` (list or names file) is required, coordinates are de-normalised
    with ``width`` x ``height``."""
    if classes is None:
        raise ValueError(f"{source}: YOLO-OBB labels need class names: pass classes=<names .yaml/.txt or a list>")
    for name, v in (("width", width), ("height", height)):
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not 0 < v < 1e9:
            raise ValueError(f"{source}: image {name} must be a positive number, got {v!r}")
    names = C.resolve_classes(classes, ())
    issues = P.Issues(source, strict)
    polys, labels = [], []
    for lineno, line in enumerate(P.lines(text), 1):
        toks = P.tokens(line)
        if not toks:
            continue
        try:
            poly, label = _yolo_line(toks, len(names))
            poly = yolo_obb_to_poly(torch.from_numpy(poly), float(width), float(height)).numpy()
            if _degenerate(poly):
                raise ValueError("degenerate polygon (zero area)")
        except ValueError as e:
            issues.bad(lineno, str(e), line)
            continue
        polys.append(poly), labels.append(label)
    rec = _record(polys, labels, [0] * len(labels), names, {"skipped": issues.skipped}, label_path=source)
    rec.width, rec.height = int(round(width)), int(round(height))
    return rec


def _xml_root(data: bytes, source: str) -> ET.Element:
    try:
        return ET.fromstring(data)
    except ET.ParseError as e:
        raise ValueError(f"{source}:{e.position[0]}: malformed XML: {e}") from None


_MISSING = object()


def _xml_float(node: ET.Element, tag: str, lo: float = -P.MAX_COORD, hi: float = P.MAX_COORD, default=_MISSING):
    child = node.find(tag)
    text = None if child is None or child.text is None else child.text.strip()
    if not text:
        if default is _MISSING:
            raise ValueError(f"missing <{tag}>")
        return default
    return P.parse_float(text, f"<{tag}>", lo, hi)


def _xml_int(node: ET.Element, tag: str, lo: int, hi: int, default=_MISSING):
    child = node.find(tag)
    text = None if child is None or child.text is None else child.text.strip()
    if not text:
        if default is _MISSING:
            raise ValueError(f"missing <{tag}>")
        return default
    return P.parse_int(text, f"<{tag}>", lo, hi)


def _xml_size(node: ET.Element | None, tags: tuple[str, str], issues: P.Issues) -> tuple[int | None, int | None]:
    """Image width/height from XML (positive integers), or ``(None, None)``; a bad value is an issue."""
    if node is None:
        return None, None
    try:
        return tuple(_xml_int(node, t, 1, MAX_SIDE, None) for t in tags)
    except ValueError as e:
        issues.bad("size", f"{e} (image size)")
        return None, None


def parse_dior_xml(data: bytes, source: str = "<string>", classes=None, strict: bool = True) -> Annotations:
    """Parse a DIOR-R XML annotation (``<robndbox>`` corners); class names are lower-cased."""
    names = C.resolve_classes(classes, C.DIOR_R)
    index, issues, root = C.ClassIndex(names), P.Issues(source, strict), _xml_root(data, source)
    width, height = _xml_size(root.find("size"), ("width", "height"), issues)
    polys, labels, diffs = [], [], []
    corners = (
        "x_left_top",
        "y_left_top",
        "x_right_top",
        "y_right_top",
        "x_right_bottom",
        "y_right_bottom",
        "x_left_bottom",
        "y_left_bottom",
    )
    for k, obj in enumerate(root.iter("object"), 1):
        name = (obj.findtext("name") or "").strip()
        label = index.get(name.lower())
        try:
            if label is None:
                raise ValueError(f"unknown class {name!r}")
            box = obj.find("robndbox")
            if box is None:
                raise ValueError("missing <robndbox>")
            poly = np.array([_xml_float(box, t) for t in corners])
            diff = _xml_int(obj, "difficult", 0, MAX_DIFFICULT, 0)
            if _degenerate(poly):
                raise ValueError("degenerate polygon (zero area)")
        except ValueError as e:
            issues.bad(f"object {k}", str(e))
            continue
        polys.append(poly), labels.append(label), diffs.append(diff)
    rec = _record(polys, labels, diffs, names, {"skipped": issues.skipped}, label_path=source)
    rec.width, rec.height = width, height
    rec.meta["filename"] = root.findtext("filename")
    return rec


def parse_hrsc_xml(data: bytes, source: str = "<string>", classes=None, strict: bool = True) -> Annotations:
    """Parse an HRSC2016 XML annotation. ``classes=None``/``'hrsc'``: every object is ``ship`` (label 0);
    ``'hrsc-classwise'``: MMRotate's 31 classes by ``Class_ID``. Bow points go to ``meta['headers']``."""
    names = C.resolve_classes(classes, C.HRSC)
    classwise = len(names) > 1
    issues, root = P.Issues(source, strict), _xml_root(data, source)
    width, height = _xml_size(root, ("Img_SizeWidth", "Img_SizeHeight"), issues)
    boxes, labels, diffs, headers = [], [], [], []
    for k, obj in enumerate(root.iter("HRSC_Object"), 1):
        try:
            label = C.HRSC_CLASS_IDS.get((obj.findtext("Class_ID") or "").strip()) if classwise else 0
            if label is None or label >= len(names):
                raise ValueError(f"unknown Class_ID {obj.findtext('Class_ID')!r}")
            box = [_xml_float(obj, t) for t in ("mbox_cx", "mbox_cy")]
            box += [_xml_float(obj, t, 0.0) for t in ("mbox_w", "mbox_h")]
            box.append(_xml_float(obj, "mbox_ang", -2 * math.pi, 2 * math.pi))
            diff = _xml_int(obj, "difficult", 0, MAX_DIFFICULT, 0)
            head = (_xml_float(obj, "header_x", default=-1.0), _xml_float(obj, "header_y", default=-1.0))
            if box[2] <= 0 or box[3] <= 0:
                raise ValueError("degenerate box (zero area)")
        except ValueError as e:
            issues.bad(f"object {k}", str(e))
            continue
        boxes.append(box), labels.append(label), diffs.append(diff), headers.append(head)
    polys = obb2poly(torch.tensor(boxes, dtype=torch.float64).reshape(-1, 5)).numpy()
    rec = _record(list(polys), labels, diffs, names, {"skipped": issues.skipped}, label_path=source)
    rec.width, rec.height = width, height
    rec.meta["headers"] = np.array(headers, dtype=np.float32).reshape(-1, 2)
    rec.meta["filename"] = f"{root.findtext('Img_FileName')}.{root.findtext('Img_FileFmt') or 'bmp'}"
    return rec


def _record(polys, labels, diffs, names, meta, label_path=None) -> Annotations:
    diffs = np.array(diffs, dtype=np.int64)
    return Annotations(
        None,
        None,
        None,
        np.array(polys, np.float64).reshape(-1, 8).astype(np.float32),
        np.array(labels, np.int64),
        names,
        diffs != 0,
        diffs,
        label_path,
        meta,
    )


def read_image_size(path: str | Path) -> tuple[int, int]:
    """``(width, height)`` of an image from its header only (PNG, JPEG, BMP, TIFF; ``rdet.data.images``).
    Raises ``FileNotFoundError``/``ValueError`` naming the file (a truncated or corrupt header included)."""
    return image_size(path)


def find_image(label_path: str | Path, image_dir: str | Path | None = None, name: str | None = None) -> Path | None:
    """The image of a label file: ``image_dir/<stem>.<ext>`` if ``image_dir`` is given, else the file with the
    same stem next to it or in a sibling image folder (``labelTxt``/``labels``/``annfiles``/``Annotations``
    -> ``images``/``JPEGImages``/...; ``labels/train/x.txt`` -> ``images/train/x.jpg``). ``None`` if absent."""
    label_path = Path(label_path)
    stem = Path(name).stem if name else label_path.stem
    dirs = [Path(image_dir)] if image_dir is not None else [label_path.parent]
    if image_dir is None:
        parts = label_path.parent.parts
        for i in range(len(parts) - 1, -1, -1):
            if parts[i] in _LABEL_DIRS:
                dirs += [Path(*parts[:i], d, *parts[i + 1 :]) for d in _IMAGE_DIRS]
    for d in dirs:
        if name and (d / name).is_file():
            return d / name
        for ext in IMAGE_EXTS:
            if (d / (stem + ext)).is_file():
                return d / (stem + ext)
    return None


def detect_format(path: str | Path, data: bytes | None = None) -> str:
    """Guess the format of a label file from its extension and content (one of ``FORMATS``)."""
    path = Path(path)
    data = path.read_bytes() if data is None else data
    if path.suffix.lower() == ".xml":
        root = _xml_root(data, str(path))
        if root.tag == "HRSC_Image":
            return "hrsc"
        if root.tag == "annotation":
            return "dior-r"
        raise ValueError(f"{path}: unknown XML label format (root <{root.tag}>)")
    for line in P.lines(_decode(data, str(path))):
        toks = P.tokens(line)
        if not toks or (":" in line and line.split(":", 1)[0].strip().lower() in _HEADER_KEYS):
            continue
        yolo = len(toks) == 9 and toks[0].isascii() and toks[0].isdigit() and all(map(P.is_float, toks[1:]))
        return "yolo-obb" if yolo else "dota"
    return "dota"  # empty: no objects either way


def _yolo_classes(path: Path, classes):
    """The class names of a YOLO-OBB file: ``classes`` if given, else the class file found beside it."""
    if classes is not None:
        return classes, None
    found = C.find_class_file(path)
    if found is None:
        raise ValueError(
            f"{path}: YOLO-OBB labels need class names and none of {', '.join(C.CLASS_FILES)} (or a dataset "
            f"YAML with names:) is beside them or up to 3 folders above; pass the class names (classes=...)"
        )
    return found, found


def read_labels(
    path: str | Path,
    format: str | None = None,
    classes=None,
    image_size: tuple[int, int] | None = None,
    strict: bool = True,
    image_path: str | Path | None = None,
    image_dir: str | Path | None = None,
    _warn: bool = True,
) -> Annotations:
    """Read one label file into an ``Annotations`` record.

    Args:
        path: the label file.
        format: one of ``FORMATS``, or ``None`` to infer it from the extension and content.
        classes: class list (see ``rdet.data.classes.resolve_classes``); defaults per format: DOTA v2.0,
            DIOR-R, HRSC (``ship``); YOLO-OBB: the ``classes.yaml``/``data.yaml`` found beside the labels
            (``rdet.data.classes.find_class_file``; recorded in ``meta['classes_file']``).
        image_size: ``(width, height)``; by default read from the image header when the image is found.
        strict: raise on malformed entries (default) or skip and report them (module docstring).
        image_path, image_dir: where the image is, if not next to the labels (``find_image``).

    Raises:
        FileNotFoundError: no label file. ValueError: ``<file>:<line>: <reason>`` (XML: ``<file>:object <k>``);
            an unreadable image header beside the labels names the image.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"label file not found: {path}")
    data = path.read_bytes()
    fmt = detect_format(path, data) if format is None else format
    if fmt not in FORMATS:
        raise ValueError(f"unknown label format {format!r}; valid: {', '.join(FORMATS)}")
    class_file = None
    if fmt == "yolo-obb":
        classes, class_file = _yolo_classes(path, classes)
    if fmt in ("dior-r", "hrsc"):
        rec = (parse_dior_xml if fmt == "dior-r" else parse_hrsc_xml)(data, str(path), classes, strict)
        name = rec.meta.get("filename")
    else:
        rec, name = None, None
    img = Path(image_path) if image_path is not None else find_image(path, image_dir, name)
    size_issue = None
    if image_size is None and img is not None and (fmt == "yolo-obb" or rec is None or rec.width is None):
        try:
            image_size = read_image_size(img)
        except ValueError as e:
            if strict or fmt == "yolo-obb":  # YOLO-OBB cannot be read without the size
                raise ValueError(f"{path}: cannot read the size of its image: {e}") from None
            size_issue = f"{path}:image: {e}"
    if fmt == "dota":
        rec = parse_dota(_decode(data, str(path)), str(path), classes, strict)
    elif fmt == "yolo-obb":
        if image_size is None:
            raise ValueError(
                f"{path}: YOLO-OBB coordinates are normalised; pass image_size=(w, h) or put the "
                "image where find_image looks (labels/ -> images/)"
            )
        rec = parse_yolo_obb(_decode(data, str(path)), image_size[0], image_size[1], classes, str(path), strict)
    assert rec is not None  # every format of FORMATS was parsed above
    if size_issue:
        rec.meta["skipped"].append(size_issue)
    if image_size is not None:
        rec.width, rec.height = int(image_size[0]), int(image_size[1])
    rec.image_path = None if img is None else str(img)
    rec.meta["format"] = fmt
    if class_file:
        rec.meta["classes_file"] = class_file
    if _warn:
        P.warn_skipped(rec.meta["skipped"])
    return rec


def read_label_dir(
    label_dir: str | Path,
    format: str | None = None,
    classes=None,
    image_dir: str | Path | None = None,
    strict: bool = True,
    skipped: list[str] | None = None,
) -> list[Annotations]:
    """Read every label file (``*.txt`` or ``*.xml``) of a folder, sorted by name.

    In lenient mode (``strict=False``) a file that cannot be read at all (not UTF-8, malformed XML, a broken
    image beside YOLO labels) is left out instead of aborting the load; one warning lists every skipped entry
    and file, and they are appended to ``skipped`` when a list is given.
    """
    label_dir = Path(label_dir)
    if not label_dir.is_dir():
        raise FileNotFoundError(f"label folder not found: {label_dir}")
    files = sorted(p for p in label_dir.iterdir() if p.suffix.lower() in (".txt", ".xml") and p.is_file())
    out, bad = [], []
    for p in files:
        try:
            out.append(read_labels(p, format, classes, strict=strict, image_dir=image_dir, _warn=False))
        except ValueError as e:
            if strict:
                raise
            bad.append(f"{e} (file skipped)")
    issues = [s for r in out for s in r.meta["skipped"]] + bad
    if skipped is not None:
        skipped.extend(issues)
    P.warn_skipped(issues)
    return out
