"""Label readers and writers: DOTA labelTxt, YOLO-OBB, DIOR-R XML, HRSC2016 XML; ``rdet convert``.

Every reader returns an :class:`~rdet.data.annotations.Annotations` (polygons ``[N, 8]`` in pixels).

Formats
-------
``dota``      ``x1 y1 x2 y2 x3 y3 x4 y4 class [difficult]`` per line, optional ``imagesource:``/``gsd:``
              header lines (v1.0, v1.5 and v2.0 differ only in their class lists, ``rdet.data.classes``).
              With ``classes=None`` the v2.0 list is used: it contains v1.0 and v1.5, with the same ids.
``yolo-obb``  ``class_id x1 y1 ... x4 y4`` normalised by the image width/height (Ultralytics). The class
              names come from ``classes`` (a list, or a ``dota8.yaml``-like / one-per-line file); the
              image size from ``image_size`` or from the header of the matching image.
``dior-r``    VOC-style XML, one ``<object>`` per box with ``<robndbox>`` corners ``x_left_top`` ...
``hrsc``      HRSC2016 XML: ``mbox_cx, mbox_cy, mbox_w, mbox_h, mbox_ang``. ``mbox_ang`` is in radians and
              measured like ours (from +x towards +y, y down: positive = clockwise on screen), which we
              checked on annotation 100000006: its bow point ``header_x/y`` lies on the box's long axis
              only with this sign. So HRSC boxes *are* rdet boxes; the polygon is ``obb2poly`` of them.

Bad input
---------
``strict=True`` (default): a malformed line (wrong field count, non-numeric or non-finite value, unknown
class, polygon with zero area) raises ``ValueError('<file>:<line>: <reason>: <text>')``. ``strict=False``
skips such lines, lists every one in ``Annotations.meta['skipped']`` and warns once per call with all of
them. Nothing is dropped silently.
"""

from __future__ import annotations

import argparse
import struct
import sys
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import torch

from rdet.boxes import obb2poly, poly_to_yolo_obb, yolo_obb_to_poly
from rdet.data import classes as C
from rdet.data.annotations import Annotations

FORMATS = ('dota', 'yolo-obb', 'dior-r', 'hrsc')
IMAGE_EXTS = ('.png', '.jpg', '.jpeg', '.tif', '.tiff', '.bmp', '.PNG', '.JPG', '.JPEG', '.TIF', '.TIFF', '.BMP')
_LABEL_DIRS = ('labelTxt', 'labels', 'annfiles', 'Annotations', 'labelTxt-v1.0', 'labelTxt-v1.5', 'labelTxt-v2.0')
_IMAGE_DIRS = ('images', 'JPEGImages', 'AllImages', 'JPEGImages-trainval', 'JPEGImages-test')
_HEADER_KEYS = ('imagesource', 'gsd')


class _Issues:
    """Collects malformed lines: raises at the first in strict mode, else records ``file:line: reason``."""

    def __init__(self, source: str, strict: bool):
        self.source, self.strict, self.skipped = source, strict, []

    def bad(self, where: int | str, reason: str, text: str = '') -> None:
        msg = f'{self.source}:{where}: {reason}' + (f': {text[:80]!r}' if text else '')
        if self.strict:
            raise ValueError(msg)
        self.skipped.append(msg)


def _warn_skipped(skipped: list[str]) -> None:
    if skipped:
        warnings.warn(f'skipped {len(skipped)} malformed label entr{"y" if len(skipped) == 1 else "ies"}:\n  '
                      + '\n  '.join(skipped), stacklevel=3)


def _floats(tokens: list[str]) -> np.ndarray | None:
    try:
        v = np.array([float(t) for t in tokens], dtype=np.float64)
    except ValueError:
        return None
    # Beyond 1e9 px is no image coordinate (and would overflow float32 later).
    return v if (np.abs(v) < 1e9).all() else None


def _degenerate(poly: np.ndarray) -> bool:
    """True when the 4 points are (numerically) on one line, i.e. every enclosing shape has zero area."""
    p = poly.reshape(4, 2) - poly.reshape(4, 2).mean(0)
    tri = [(1, 2, 3), (0, 2, 3), (0, 1, 3), (0, 1, 2)]
    areas = [abs((p[b, 0] - p[a, 0]) * (p[c, 1] - p[a, 1]) - (p[c, 0] - p[a, 0]) * (p[b, 1] - p[a, 1]))
             for a, b, c in tri]
    return max(areas) <= 1e-9 * max(1.0, float(np.abs(p).max()) ** 2)


def _decode(data: bytes, source: str) -> str:
    try:
        return data.decode('utf-8-sig')
    except UnicodeDecodeError as e:
        raise ValueError(f'{source}: not UTF-8 text ({e.reason} at byte {e.start})') from None


def parse_dota(text: str, source: str = '<string>', classes=None, strict: bool = True) -> Annotations:
    """Parse DOTA labelTxt text (see the module docstring). Image path and size are left ``None``."""
    names = C.resolve_classes(classes, C.DOTA2_0)
    index, issues = C.ClassIndex(names), _Issues(source, strict)
    polys, labels, diffs, meta = [], [], [], {}
    for lineno, line in enumerate(text.splitlines(), 1):
        tokens = line.split()
        if not tokens:
            continue
        key = line.split(':', 1)[0].strip().lower()
        if ':' in line and key in _HEADER_KEYS:
            value = line.split(':', 1)[1].strip()
            if key == 'gsd':
                try:
                    meta['gsd'] = float(value)
                except ValueError:
                    meta['gsd'] = None  # DOTA writes 'gsd:null' for unknown resolutions
            else:
                meta[key] = value
            continue
        if len(tokens) not in (9, 10):
            issues.bad(lineno, f'expected 9 or 10 fields (8 coordinates, class, [difficult]), got {len(tokens)}', line)
            continue
        poly = _floats(tokens[:8])
        if poly is None:
            issues.bad(lineno, 'coordinates must be numbers with |v| < 1e9', line)
            continue
        label = index.get(tokens[8])
        if label is None:
            issues.bad(lineno, f'unknown class {tokens[8]!r} (classes: {", ".join(names)})', line)
            continue
        try:
            diff = int(tokens[9]) if len(tokens) == 10 else 0
        except ValueError:
            diff = -1
        if diff < 0:
            issues.bad(lineno, 'difficult must be a non-negative integer', line)
            continue
        if _degenerate(poly):
            issues.bad(lineno, 'degenerate polygon (zero area)', line)
            continue
        polys.append(poly), labels.append(label), diffs.append(diff)
    meta['skipped'] = issues.skipped
    return _record(polys, labels, diffs, names, meta, label_path=source)


def parse_yolo_obb(text: str, width: float, height: float, classes, source: str = '<string>',
                   strict: bool = True) -> Annotations:
    """Parse YOLO-OBB text; ``classes`` (list or names file) is required, coordinates are de-normalised
    with ``width`` x ``height``."""
    if classes is None:
        raise ValueError(f'{source}: YOLO-OBB labels need class names: pass classes=<names .yaml/.txt or a list>')
    names = C.resolve_classes(classes, ())
    issues = _Issues(source, strict)
    polys, labels = [], []
    for lineno, line in enumerate(text.splitlines(), 1):
        tokens = line.split()
        if not tokens:
            continue
        if len(tokens) != 9:
            issues.bad(lineno, f'expected 9 fields (class id, 8 normalised coordinates), got {len(tokens)}', line)
            continue
        poly = _floats(tokens[1:])
        if poly is None:
            issues.bad(lineno, 'coordinates must be numbers with |v| < 1e9', line)
            continue
        if not (tokens[0].isascii() and tokens[0].isdigit()) or int(tokens[0]) >= len(names):
            issues.bad(lineno, f'class id must be an integer in [0, {len(names)})', line)
            continue
        poly = yolo_obb_to_poly(torch.from_numpy(poly), float(width), float(height)).numpy()
        if _degenerate(poly):
            issues.bad(lineno, 'degenerate polygon (zero area)', line)
            continue
        polys.append(poly), labels.append(int(tokens[0]))
    rec = _record(polys, labels, [0] * len(labels), names, {'skipped': issues.skipped}, label_path=source)
    rec.width, rec.height = int(round(width)), int(round(height))
    return rec


def _xml_root(data: bytes, source: str) -> ET.Element:
    try:
        return ET.fromstring(data)
    except ET.ParseError as e:
        raise ValueError(f'{source}:{e.position[0]}: malformed XML: {e}') from None


def _xml_float(node: ET.Element, tag: str) -> float:
    child = node.find(tag)
    if child is None or child.text is None:
        raise KeyError(f'missing <{tag}>')
    v = float(child.text)  # ValueError for non-numbers
    if not np.isfinite(v):
        raise ValueError(f'<{tag}> is not finite')
    return v


def _xml_int(node: ET.Element, tag: str, default: int | None = None) -> int | None:
    child = node.find(tag)
    if child is None or child.text is None or not child.text.strip():
        return default
    return int(float(child.text))


def parse_dior_xml(data: bytes, source: str = '<string>', classes=None, strict: bool = True) -> Annotations:
    """Parse a DIOR-R XML annotation (``<robndbox>`` corners); class names are lower-cased."""
    names = C.resolve_classes(classes, C.DIOR_R)
    index, issues, root = C.ClassIndex(names), _Issues(source, strict), _xml_root(data, source)
    polys, labels, diffs = [], [], []
    corners = ('x_left_top', 'y_left_top', 'x_right_top', 'y_right_top', 'x_right_bottom', 'y_right_bottom',
               'x_left_bottom', 'y_left_bottom')
    for k, obj in enumerate(root.iter('object'), 1):
        name = (obj.findtext('name') or '').strip()
        where = f'object {k}'
        label = index.get(name.lower())
        if label is None:
            issues.bad(where, f'unknown class {name!r}')
            continue
        box = obj.find('robndbox')
        try:
            if box is None:
                raise KeyError('missing <robndbox>')
            poly = np.array([_xml_float(box, t) for t in corners])
            diff = _xml_int(obj, 'difficult', 0)
        except (KeyError, ValueError) as e:
            issues.bad(where, str(e).strip('"\''))
            continue
        if _degenerate(poly):
            issues.bad(where, 'degenerate polygon (zero area)')
            continue
        polys.append(poly), labels.append(label), diffs.append(diff)
    rec = _record(polys, labels, diffs, names, {'skipped': issues.skipped}, label_path=source)
    size = root.find('size')
    if size is not None:
        rec.width, rec.height = _xml_int(size, 'width'), _xml_int(size, 'height')
    rec.meta['filename'] = root.findtext('filename')
    return rec


def parse_hrsc_xml(data: bytes, source: str = '<string>', classes=None, strict: bool = True) -> Annotations:
    """Parse an HRSC2016 XML annotation. ``classes=None``/``'hrsc'``: every object is ``ship`` (label 0);
    ``'hrsc-classwise'``: MMRotate's 31 classes by ``Class_ID``. Bow points go to ``meta['headers']``."""
    names = C.resolve_classes(classes, C.HRSC)
    classwise = len(names) > 1
    issues, root = _Issues(source, strict), _xml_root(data, source)
    boxes, labels, diffs, headers = [], [], [], []
    for k, obj in enumerate(root.iter('HRSC_Object'), 1):
        where = f'object {k}'
        label = C.HRSC_CLASS_IDS.get((obj.findtext('Class_ID') or '').strip()) if classwise else 0
        if label is None or label >= len(names):
            issues.bad(where, f'unknown Class_ID {obj.findtext("Class_ID")!r}')
            continue
        try:
            box = [_xml_float(obj, t) for t in ('mbox_cx', 'mbox_cy', 'mbox_w', 'mbox_h', 'mbox_ang')]
            diff = _xml_int(obj, 'difficult', 0)
            head = (_xml_int(obj, 'header_x', -1), _xml_int(obj, 'header_y', -1))
        except (KeyError, ValueError) as e:
            issues.bad(where, str(e).strip('"\''))
            continue
        if box[2] <= 0 or box[3] <= 0:
            issues.bad(where, 'degenerate box (zero area)')
            continue
        boxes.append(box), labels.append(label), diffs.append(diff), headers.append(head)
    polys = obb2poly(torch.tensor(boxes, dtype=torch.float64).reshape(-1, 5)).numpy()
    rec = _record(list(polys), labels, diffs, names, {'skipped': issues.skipped}, label_path=source)
    rec.width, rec.height = _xml_int(root, 'Img_SizeWidth'), _xml_int(root, 'Img_SizeHeight')
    rec.meta['headers'] = np.array(headers, dtype=np.float32).reshape(-1, 2)
    rec.meta['filename'] = f'{root.findtext("Img_FileName")}.{root.findtext("Img_FileFmt") or "bmp"}'
    return rec


def _record(polys, labels, diffs, names, meta, label_path=None) -> Annotations:
    diffs = np.array(diffs, dtype=np.int64)
    return Annotations(None, None, None, np.array(polys, np.float64).reshape(-1, 8).astype(np.float32),
                       np.array(labels, np.int64), names, diffs != 0, diffs, label_path, meta)


def read_image_size(path: str | Path) -> tuple[int, int]:
    """``(width, height)`` of an image, read from the PNG/JPEG/BMP header without decoding (other formats
    are decoded with OpenCV). Raises ``FileNotFoundError``/``ValueError`` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'image not found: {path}')
    with open(path, 'rb') as f:
        head = f.read(32)
        if head[:8] == b'\x89PNG\r\n\x1a\n' and head[12:16] == b'IHDR':
            return struct.unpack('>II', head[16:24])
        if head[:2] == b'BM' and len(head) >= 26:
            w, h = struct.unpack('<ii', head[18:26])
            return w, abs(h)
        if head[:2] == b'\xff\xd8':  # JPEG: walk the markers to the start-of-frame
            f.seek(2)
            while True:
                marker = f.read(2)
                if len(marker) < 2 or marker[0] != 0xFF:
                    break
                if marker[1] in (0xD8, 0x01) or 0xD0 <= marker[1] <= 0xD7:
                    continue
                length = struct.unpack('>H', f.read(2))[0]
                if 0xC0 <= marker[1] <= 0xCF and marker[1] not in (0xC4, 0xC8, 0xCC):
                    h, w = struct.unpack('>xHH', f.read(5))
                    return w, h
                f.seek(length - 2, 1)
    import cv2  # noqa: PLC0415 (only for formats whose header we do not parse)

    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ValueError(f'cannot read image {path}')
    return img.shape[1], img.shape[0]


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
                dirs += [Path(*parts[:i], d, *parts[i + 1:]) for d in _IMAGE_DIRS]
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
    if path.suffix.lower() == '.xml':
        root = _xml_root(data, str(path))
        if root.tag == 'HRSC_Image':
            return 'hrsc'
        if root.tag == 'annotation':
            return 'dior-r'
        raise ValueError(f'{path}: unknown XML label format (root <{root.tag}>)')
    for line in _decode(data, str(path)).splitlines():
        tokens = line.split()
        if not tokens or (':' in line and line.split(':', 1)[0].strip().lower() in _HEADER_KEYS):
            continue
        yolo = len(tokens) == 9 and tokens[0].isascii() and tokens[0].isdigit() and _floats(tokens[1:]) is not None
        return 'yolo-obb' if yolo else 'dota'
    return 'dota'  # empty: no objects either way


def read_labels(path: str | Path, format: str | None = None, classes=None, image_size: tuple[int, int] | None = None,
                strict: bool = True, image_path: str | Path | None = None, image_dir: str | Path | None = None,
                _warn: bool = True) -> Annotations:
    """Read one label file into an ``Annotations`` record.

    Args:
        path: the label file.
        format: one of ``FORMATS``, or ``None`` to infer it from the extension and content.
        classes: class list (see ``rdet.data.classes.resolve_classes``); defaults per format: DOTA v2.0,
            DIOR-R, HRSC (``ship``); YOLO-OBB requires it.
        image_size: ``(width, height)``; by default read from the image header when the image is found.
        strict: raise on malformed entries (default) or skip and report them (module docstring).
        image_path, image_dir: where the image is, if not next to the labels (``find_image``).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'label file not found: {path}')
    data = path.read_bytes()
    fmt = detect_format(path, data) if format is None else format
    if fmt not in FORMATS:
        raise ValueError(f'unknown label format {format!r}; valid: {", ".join(FORMATS)}')
    if fmt in ('dior-r', 'hrsc'):
        rec = (parse_dior_xml if fmt == 'dior-r' else parse_hrsc_xml)(data, str(path), classes, strict)
        name = rec.meta.get('filename')
    else:
        rec, name = None, None
    img = Path(image_path) if image_path is not None else find_image(path, image_dir, name)
    if image_size is None and img is not None and (fmt == 'yolo-obb' or rec is None or rec.width is None):
        image_size = read_image_size(img)
    if fmt == 'dota':
        rec = parse_dota(_decode(data, str(path)), str(path), classes, strict)
    elif fmt == 'yolo-obb':
        if image_size is None:
            raise ValueError(f'{path}: YOLO-OBB coordinates are normalised; pass image_size=(w, h) or put the '
                             'image where find_image looks (labels/ -> images/)')
        rec = parse_yolo_obb(_decode(data, str(path)), image_size[0], image_size[1], classes, str(path), strict)
    if image_size is not None:
        rec.width, rec.height = int(image_size[0]), int(image_size[1])
    rec.image_path = None if img is None else str(img)
    rec.meta['format'] = fmt
    if _warn:
        _warn_skipped(rec.meta['skipped'])
    return rec


def read_label_dir(label_dir: str | Path, format: str | None = None, classes=None, image_dir: str | Path | None = None,
                   strict: bool = True) -> list[Annotations]:
    """Read every label file (``*.txt`` or ``*.xml``) of a folder, sorted by name; in lenient mode one
    warning lists the skipped entries of all files."""
    label_dir = Path(label_dir)
    if not label_dir.is_dir():
        raise FileNotFoundError(f'label folder not found: {label_dir}')
    files = sorted(p for p in label_dir.iterdir() if p.suffix.lower() in ('.txt', '.xml') and p.is_file())
    out = [read_labels(p, format, classes, strict=strict, image_dir=image_dir, _warn=False) for p in files]
    _warn_skipped([s for r in out for s in r.meta['skipped']])
    return out


def remap_classes(ann: Annotations, classes) -> Annotations:
    """Re-index ``ann`` onto another class list, matching names loosely (``rdet.data.classes.ClassIndex``);
    a name missing from the new list raises ``ValueError``."""
    names = C.resolve_classes(classes, ())
    index = C.ClassIndex(names)
    mapping = [index.get(n) for n in ann.class_names]
    used = sorted({ann.class_names[i] for i in ann.labels if mapping[i] is None})
    if used:
        raise ValueError(f'{ann.label_path}: classes {used} are not in the target list {names}')
    labels = np.array([mapping[i] for i in ann.labels], np.int64)
    return Annotations(ann.image_path, ann.width, ann.height, ann.polygons, labels, names, ann.difficult,
                       ann.difficulty, ann.label_path, dict(ann.meta))


def _fmt(v: float) -> str:
    # Shortest text that reads back to the same float32: 512 -> '512', 0.1 -> '0.1'.
    return np.format_float_positional(np.float32(v), unique=True, trim='-')


def write_dota(path: str | Path, ann: Annotations, header: bool = True) -> None:
    """Write DOTA labelTxt (``imagesource``/``gsd`` header lines when ``header`` and known; difficulty raw)."""
    bad = [n for n in ann.class_names if not n or len(n.split()) != 1 or n != n.strip()]
    if bad:
        raise ValueError(f'DOTA class names cannot contain whitespace: {bad}; map them first, e.g. '
                         "remap_classes(ann, 'dota1.0')")
    lines = []
    if header:
        if 'imagesource' in ann.meta:
            lines.append(f'imagesource:{ann.meta["imagesource"]}')
        if 'gsd' in ann.meta:
            lines.append(f'gsd:{"null" if ann.meta["gsd"] is None else repr(ann.meta["gsd"])}')
    for poly, label, diff in zip(ann.polygons, ann.labels, ann.difficulty):
        lines.append(' '.join(_fmt(v) for v in poly) + f' {ann.class_names[label]} {diff}')
    Path(path).write_text(''.join(ln + '\n' for ln in lines), encoding='utf-8')


def write_yolo_obb(path: str | Path, ann: Annotations, precision: int | None = None) -> None:
    """Write YOLO-OBB (``class_id`` + normalised polygon). ``precision=None`` writes the shortest text that
    reads back to the same float64 (exact round trip); an int gives that many decimals (Ultralytics: 6)."""
    if not ann.width or not ann.height:
        raise ValueError(f'{ann.label_path or ann.image_path}: YOLO-OBB needs the image size (width/height)')
    norm = poly_to_yolo_obb(torch.from_numpy(ann.polygons.astype(np.float64)), ann.width, ann.height).numpy()
    f = (lambda v: repr(float(v))) if precision is None else (lambda v: f'{v:.{precision}f}')
    Path(path).write_text(''.join(f'{label} ' + ' '.join(f(v) for v in p) + '\n'
                                  for p, label in zip(norm, ann.labels)), encoding='utf-8')


def cli(argv: list[str]) -> int:
    """``rdet convert SRC DST --to dota|yolo-obb``: convert a label file or folder."""
    p = argparse.ArgumentParser(prog='rdet convert', description='Convert oriented-box label files.')
    p.add_argument('src', help='label file or folder')
    p.add_argument('dst', help='output folder')
    p.add_argument('--to', required=True, choices=('dota', 'yolo-obb'))
    p.add_argument('--from', dest='src_format', choices=FORMATS, default=None, help='input format (default: guess)')
    p.add_argument('--names', default=None, help='input class names (list file or YAML); required for YOLO-OBB input')
    p.add_argument('--classes', default=None,
                   help='output class list: dataset key (dota1.0, dota1.5, dota2.0, dior-r, hrsc) or names file; '
                        'names are matched ignoring case and space/-/_ (default: the input list)')
    p.add_argument('--images', default=None, help='image folder (for image sizes), if not beside the labels')
    p.add_argument('--lenient', action='store_true', help='skip malformed entries (all are reported)')
    args = p.parse_args(argv)
    src, dst = Path(args.src), Path(args.dst)
    files = [src] if src.is_file() else sorted(q for q in src.glob('*') if q.suffix.lower() in ('.txt', '.xml'))
    if not files:
        print(f'rdet convert: no label files in {src}', file=sys.stderr)
        return 2
    dst.mkdir(parents=True, exist_ok=True)
    skipped, names = [], None
    for f in files:
        ann = read_labels(f, args.src_format, args.names, strict=not args.lenient, image_dir=args.images, _warn=False)
        skipped += ann.meta['skipped']
        if args.classes is not None:
            ann = remap_classes(ann, args.classes)
        names = ann.class_names
        out = dst / (f.stem + '.txt')
        write_dota(out, ann) if args.to == 'dota' else write_yolo_obb(out, ann)
    if args.to == 'yolo-obb':
        C.write_class_names(str(dst / 'classes.yaml'), names)
    for s in skipped:
        print(f'skipped {s}', file=sys.stderr)
    note = f' ({len(skipped)} entries skipped)' if skipped else ''
    print(f'converted {len(files)} file(s) to {args.to} in {dst}{note}')
    return 0
