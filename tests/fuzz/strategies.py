"""Hypothesis strategies for the fuzz targets: label files (all formats), image files (headers, planar TIFF,
bombs, truncation), and rotated-box pairs."""

from __future__ import annotations

import struct
import zlib

import numpy as np
from hypothesis import strategies as st

# Numbers as label files spell them, good and bad: the bad ones are what the readers must refuse by file:line.
NUMBERS = st.sampled_from(
    [
        "0",
        "1",
        "2",
        "7",
        "10",
        "512",
        "-3.5",
        "0.25",
        "1e3",
        "1.",
        ".5",
        "1e300",
        "-1e300",
        "1e9",
        "99999999999999999999",
        "nan",
        "inf",
        "-inf",
        "NaN",
        "١٠",
        "１０",
        "1_0",
        "0x10",
        "²",
        "",
        "1e",
        "--1",
        "+4",
        "-0",
        "0.999",
        "1.04",
        "-0.07",
        "3e-320",
        "1,5",
    ]
)
GOOD = st.sampled_from(["0", "1", "7", "10", "512", "-3.5", "0.25", "1e3", "1.", ".5", "+4", "-0", "3e-320"])
CLASSES = st.sampled_from(["ship", "plane", "small-vehicle", "storage tank", "harbor", "ufo", "Ship", "0", ""])
SEPARATORS = st.sampled_from([" ", " ", " ", "  ", "\t", "\x0c", "\x0b", "\x85", "\u2028", "\u00a0", "\r"])
NEWLINES = st.sampled_from(["\n", "\n", "\r\n", "\x0c\n", "\u2028", "\x85"])


def _join(fields: list[str], seps: list[str]) -> str:
    return "".join(f + (seps[i] if i < len(seps) else " ") for i, f in enumerate(fields)).rstrip(" ")


@st.composite
def dota_text(draw) -> str:
    """DOTA labelTxt text: header lines, 8 numbers + class + [difficult], mutated fields and separators."""
    lines = []
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(["box", "box", "box", "header", "junk"]))
        if kind == "header":
            lines.append(draw(st.sampled_from(["imagesource:GoogleEarth", "gsd:null", "gsd:"])) + draw(NUMBERS))
        elif kind == "junk":
            lines.append(draw(st.text(max_size=30)))
        else:
            fields = [draw(GOOD) for _ in range(8)] + [draw(CLASSES)]
            if draw(st.booleans()):
                fields.append(draw(st.sampled_from(["0", "1", "2"])))
            if draw(st.booleans()):  # one field replaced by an edge case (bad numbers, non-ASCII digits...)
                fields[draw(st.integers(0, len(fields) - 1))] = draw(NUMBERS)
            if draw(st.integers(0, 9)) == 0:
                fields = fields[: draw(st.integers(0, len(fields)))]
            seps = [draw(SEPARATORS) for _ in fields]
            lines.append(_join(fields, seps))
    return "".join(ln + draw(NEWLINES) for ln in lines)


@st.composite
def yolo_text(draw) -> str:
    """YOLO-OBB text: class id + 8 normalised coordinates (and pixel coordinates, out-of-range values...)."""
    coord = st.floats(-0.3, 1.3, allow_nan=False).map(lambda v: f"{v:.6g}")
    lines = []
    for _ in range(draw(st.integers(0, 6))):
        fields = [draw(st.sampled_from(["0", "1", "2", "2", "1", "-1", "١", "1.0", "99999999999999999999"]))]
        fields += [draw(coord) for _ in range(draw(st.sampled_from([8, 8, 8, 7, 9])))]
        if draw(st.booleans()):
            fields[draw(st.integers(1, len(fields) - 1))] = draw(NUMBERS)
        lines.append(_join(fields, [draw(SEPARATORS) for _ in fields]))
    return "".join(ln + draw(NEWLINES) for ln in lines)


def _tag(name: str, value: str) -> str:
    return f"<{name}>{value}</{name}>"


@st.composite
def dior_xml(draw) -> bytes:
    """DIOR-R XML with fuzzed size, corners, difficult and names (inf, 1e300, -800, 0, Arabic digits...)."""
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
    good = ["10", "10", "60", "10", "60", "40", "10", "40"]
    objs = []
    for _ in range(draw(st.integers(0, 3))):
        vals = [draw(NUMBERS) if draw(st.integers(0, 3)) == 0 else g for g in good]
        box = "".join(_tag(c, v) for c, v in zip(corners, vals) if draw(st.integers(0, 15)) > 0)
        diff = _tag("difficult", draw(NUMBERS)) if draw(st.booleans()) else ""
        name = draw(st.sampled_from(["ship", "Airplane", "vehicle", "tank", ""]))
        objs.append(f"<object>{_tag('name', name)}<robndbox>{box}</robndbox>{diff}</object>")
    size = _tag("size", _tag("width", draw(NUMBERS)) + _tag("height", draw(NUMBERS))) if draw(st.booleans()) else ""
    text = f"<annotation><filename>x.jpg</filename>{size}{''.join(objs)}</annotation>"
    if draw(st.integers(0, 9)) == 0:
        text = text[: draw(st.integers(0, len(text)))]
    return text.encode()


@st.composite
def hrsc_xml(draw) -> bytes:
    """HRSC2016 XML with fuzzed mbox values, bow points and image size."""
    tags = ("mbox_cx", "mbox_cy", "mbox_w", "mbox_h", "mbox_ang")
    good = ["50", "50", "30", "10", "0.3"]
    objs = []
    for _ in range(draw(st.integers(0, 3))):
        vals = [draw(NUMBERS) if draw(st.integers(0, 3)) == 0 else g for g in good]
        body = "".join(_tag(t, v) for t, v in zip(tags, vals))
        for extra in ("header_x", "header_y", "difficult"):
            if draw(st.booleans()):
                body += _tag(extra, draw(NUMBERS))
        objs.append(f"<HRSC_Object>{body}</HRSC_Object>")
    size = _tag("Img_SizeWidth", draw(NUMBERS)) + _tag("Img_SizeHeight", draw(NUMBERS))
    return f"<HRSC_Image>{size}<HRSC_Objects>{''.join(objs)}</HRSC_Objects></HRSC_Image>".encode()


CLASS_YAML = st.one_of(
    st.text(max_size=80),
    st.lists(
        st.sampled_from(
            [
                "names:",
                "  0: plane",
                "  1: ship",
                "  - car",
                "  2: 'yes'",
                "  - yes",
                "  - 1",
                "names: [a, b]",
                "names: [a, a]",
                "names: {0: a, 2: b}",
                "nc: 2",
                "  x: y",
                "names: 3",
                "\t- tab",
                "names:",
                "  - ",
                "[",
                "{",
            ]
        ),
        max_size=6,
    ).map("\n".join),
)


# ------------------------------------------------------------------------------------------------ images
def _png(w: int, h: int, bits: int, color: int, payload: bytes) -> bytes:
    ihdr = struct.pack(">IIBBBBB", w, h, bits, color, 0, 0, 0)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", payload) + chunk(b"IEND", b"")


@st.composite
def png_bytes(draw) -> bytes:
    """PNG files: small valid ones, bombs (up to 2^31 per side declared, tiny data), bad IHDR fields."""
    w = draw(st.one_of(st.integers(1, 40), st.sampled_from([0, 30000, 100000, 2**31 - 1, 2**32 - 1])))
    h = draw(st.one_of(st.integers(1, 40), st.sampled_from([0, 30000, 100000, 2**31 - 1])))
    bits, color = draw(st.sampled_from([(8, 2), (8, 0), (8, 6), (16, 2), (16, 0), (8, 3), (1, 0), (7, 2), (8, 5)]))
    channels = {0: 1, 2: 3, 3: 1, 6: 4}.get(color, 3)
    row = (w * channels * bits + 7) // 8 + 1
    raw = b"\0" * (row * h) if w * h <= 4000 else b"\0" * 1000
    return _png(w, h, bits, color, zlib.compress(raw))


def _jpeg(draw) -> bytes:
    import cv2

    h, w = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    img = np.full((h, w, 3), draw(st.integers(0, 255)), np.uint8)
    data = bytearray(cv2.imencode(".jpg", img)[1].tobytes())
    sof = data.find(b"\xff\xc0")
    if sof > 0 and draw(st.booleans()):  # rewrite the declared size: a JPEG bomb or a lie
        dh = draw(st.sampled_from([0, 1, h, 65535, 30000]))
        dw = draw(st.sampled_from([0, 1, w, 65535, 30000]))
        data[sof + 5 : sof + 9] = struct.pack(">HH", dh, dw)
    return bytes(data)


def _tiff(draw) -> bytes:
    import io as _io

    import tifffile

    spp = draw(st.sampled_from([1, 3, 4, 5]))
    planar = draw(st.booleans()) and spp > 1
    dtype = draw(st.sampled_from([np.uint8, np.uint8, np.uint16, np.float32]))
    h, w = draw(st.integers(1, 48)), draw(st.integers(1, 48))
    shape = (spp, h, w) if planar else ((h, w, spp) if spp > 1 else (h, w))
    kwargs = {
        "photometric": "rgb" if spp in (3, 4) else "minisblack",
        "planarconfig": "separate" if planar else "contig",
        "bigtiff": draw(st.integers(0, 4)) == 0,
    }
    layout = draw(st.sampled_from(["tile", "strip", "strip"]))
    if layout == "tile":
        kwargs["tile"] = (16, 16)
    else:
        kwargs["rowsperstrip"] = draw(st.integers(1, 8))
    if spp == 4:
        kwargs["extrasamples"] = ("unassalpha",)
    buf = _io.BytesIO()
    tifffile.imwrite(buf, np.zeros(shape, dtype), compression=draw(st.sampled_from([None, "zlib"])), **kwargs)
    data = bytearray(buf.getvalue())
    if draw(st.integers(0, 3)) == 0:  # declare a bomb: patch ImageWidth/ImageLength values in the first IFD
        for code in (256, 257):
            k = data.find(struct.pack("<H", code) + b"\x03\x00\x01\x00\x00\x00")  # SHORT, count 1 (classic)
            if k > 0:
                data[k + 8 : k + 10] = struct.pack("<H", 60000)
    return bytes(data)


@st.composite
def image_bytes(draw) -> tuple[str, bytes]:
    """``(extension, file bytes)``: PNG/JPEG/TIFF/BMP, then possibly truncated, bit-flipped or extended."""
    kind = draw(st.sampled_from(["png", "png", "jpg", "tif", "tif", "bmp", "junk"]))
    if kind == "png":
        data = draw(png_bytes())
    elif kind == "jpg":
        data = _jpeg(draw)
    elif kind == "tif":
        data = _tiff(draw)
    elif kind == "bmp":
        import cv2

        data = cv2.imencode(".bmp", np.zeros((draw(st.integers(1, 20)), draw(st.integers(1, 20)), 3), np.uint8))[1]
        data = data.tobytes()
    else:
        data = draw(st.binary(max_size=64))
    mutation = draw(st.sampled_from(["none", "none", "truncate", "flip", "append"]))
    if mutation == "truncate" and data:
        data = data[: draw(st.integers(0, len(data) - 1))]
    elif mutation == "flip" and data:
        k = draw(st.integers(0, len(data) - 1))
        data = data[:k] + bytes([data[k] ^ (1 << draw(st.integers(0, 7)))]) + data[k + 1 :]
    elif mutation == "append":
        data = data + draw(st.binary(max_size=32))
    return kind, data


# ------------------------------------------------------------------------------------------------ boxes
SIDE = st.one_of(
    st.floats(1, 300),
    st.floats(0, 1e-5),
    st.sampled_from([0.0, 1e-30, 1e-12, 1e-6, 1e-6 * (1 + 1e-9), 1e6, 1e7]),
    st.floats(-1e6, -1e-30),
)
CENTRE = st.one_of(st.floats(-100, 1100), st.sampled_from([0.0, 1e6, -1e6, 1e8]))
ANGLE = st.one_of(st.floats(-7, 7), st.sampled_from([0.0, np.pi / 2, -np.pi / 2, np.pi]))


SIDE_VALID = st.one_of(st.floats(1, 300), st.floats(0, 1e-5), st.sampled_from([0.0, 1e-30, 1e-6, 1e6]))


@st.composite
def box(draw, finite: bool = True, valid: bool = False) -> list[float]:
    side = SIDE_VALID if valid else SIDE
    b = [draw(CENTRE), draw(CENTRE), draw(side), draw(side), draw(ANGLE)]
    if not finite and draw(st.integers(0, 9)) == 0:
        b[draw(st.integers(0, 4))] = draw(st.sampled_from([float("nan"), float("inf"), -float("inf")]))
    return b


@st.composite
def box_pair(draw) -> tuple[list[float], list[float]]:
    """Two boxes: independent, near-identical (jitter), the same, or concentric."""
    a = draw(box(finite=False))
    mode = draw(st.sampled_from(["free", "jitter", "same", "concentric"]))
    if mode == "free":
        b = draw(box(finite=False))
    elif mode == "same":
        b = list(a)
    else:
        b = [a[0], a[1], draw(SIDE), draw(SIDE), draw(ANGLE)]
        if mode == "jitter":
            b = [v + draw(st.floats(-1e-3, 1e-3)) for v in a]
    return a, b


# NMS inputs: valid boxes (negative sides are the IoU target's business), sometimes one invalid box
BOX_SETS = st.tuples(
    st.lists(box(finite=True, valid=True), min_size=0, max_size=24), st.one_of(st.none(), box(finite=False))
).map(lambda t: t[0] + ([t[1]] if t[1] is not None and t[0] else []))
