"""Image files without surprises: header-only sizes, a pixel budget checked before any decode, safe decoding.

Every place where an image enters rdet (``rdet.predict``/``open_scene``, ``rdet split``, the datasets, the
server) reads the header first (:func:`read_header`: PNG, JPEG, BMP, TIFF and BigTIFF are parsed here, without
decoding and without OpenCV) and refuses a scene larger than the pixel budget (:func:`check_pixels`) before a
single pixel is decoded. A 2.6 MB PNG can declare 30000 x 30000 pixels: decoding it whole costs ~6 bytes per
pixel (5.4 GB), and OpenCV's own 1-gigapixel cap surfaces as a ``cv2.error`` traceback.

``DEFAULT_MAX_PIXELS`` (2**29 = 536,870,912 px, e.g. 23170 x 23170) is sized for a 2-core / 24 GB machine: an
image decoded whole peaks at about 6 bytes per pixel (3.2 GB at the budget), which leaves room for a model and a
second job; pass ``max_pixels=`` (``--max-pixels``) to raise it for a larger scene. Tiled/stripped TIFFs are read
window by window, so their memory does not grow with the scene, but the budget still bounds the work.

:func:`decode_image` decodes with OpenCV after the budget check and refuses what OpenCV would silently accept:
a JPEG cut short (libjpeg only prints "Premature end of JPEG file" and fills the rest with grey) or otherwise
damaged (libjpeg's "Corrupt JPEG data" warnings are captured from stderr while decoding, and shown), a PNG without
its end chunk, and a decoded size that differs from the header.
"""

from __future__ import annotations

import contextlib
import os
import struct
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DEFAULT_MAX_PIXELS = 1 << 29
# Largest TIFF directory we parse (entries); real files have tens.
_MAX_IFD_ENTRIES = 4096


class ImageTooLargeError(ValueError):
    """The image declares more pixels than the budget allows (raised before decoding anything)."""


@dataclass(frozen=True)
class ImageHeader:
    """What the header of an image file says.

    Attributes:
        format: ``'png'``, ``'jpeg'``, ``'bmp'`` or ``'tiff'``.
        width, height: pixels.
        channels: samples per pixel as stored (PNG palette: 1), ``None`` when unknown.
        bits: bits per sample (8, 16, ...), ``None`` when unknown.
        planar: TIFF only: samples stored plane by plane (PlanarConfiguration 2).
        tiled: TIFF only: stored in tiles (else strips).
        geotiff: TIFF only: has GeoTIFF georeferencing tags (ModelPixelScale, ModelTiepoint, ModelTransformation).
    """

    format: str
    width: int
    height: int
    channels: int | None = None
    bits: int | None = None
    planar: bool = False
    tiled: bool = False
    geotiff: bool = False

    @property
    def pixels(self) -> int:
        return self.width * self.height


def resolve_max_pixels(max_pixels: int | None) -> int:
    """``None`` -> :data:`DEFAULT_MAX_PIXELS`; otherwise a positive integer (``ValueError`` naming the value)."""
    if max_pixels is None:
        return DEFAULT_MAX_PIXELS
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, (int, np.integer)) or max_pixels < 1:
        raise ValueError(
            f"max_pixels must be a positive integer (or None for {DEFAULT_MAX_PIXELS}), got {max_pixels!r}"
        )
    return int(max_pixels)


def check_pixels(source: str, width: int, height: int, max_pixels: int | None = None) -> None:
    """Raise :class:`ImageTooLargeError` when ``width * height`` exceeds the budget; the message names the file,
    its size, the budget and how to raise it."""
    budget = resolve_max_pixels(max_pixels)
    if width * height > budget:
        raise ImageTooLargeError(
            f"{source}: {width} x {height} = {width * height:,} pixels exceeds the pixel budget of {budget:,} "
            f"(checked from the header, nothing was decoded); if the image is genuine, raise the budget with "
            f"max_pixels={width * height} (CLI: --max-pixels {width * height})"
        )


# ---------------------------------------------------------------------------------------------- headers
def _bad(path: Path, what: str) -> ValueError:
    # one prefix for every unreadable file, so callers and users can recognise the case
    return ValueError(f"{path}: cannot decode the image: {what}")


def _png(path: Path, f) -> ImageHeader:
    head = f.read(33)
    if len(head) < 33 or head[12:16] != b"IHDR":
        raise _bad(path, "truncated PNG header (no IHDR chunk)")
    w, h, bits, color = struct.unpack(">IIBB", head[16:26])
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}.get(color)
    if channels is None or bits not in (1, 2, 4, 8, 16):
        raise _bad(path, f"invalid PNG header (colour type {color}, bit depth {bits})")
    return ImageHeader("png", w, h, channels, bits)


def _jpeg(path: Path, f) -> ImageHeader:
    f.seek(2)
    while True:
        byte = f.read(1)
        if not byte:
            raise _bad(path, "truncated JPEG: no frame header (SOF) before the end of the file")
        if byte != b"\xff":
            raise _bad(path, f"corrupt JPEG: expected a marker at byte {f.tell() - 1}, got 0x{byte[0]:02x}")
        marker = f.read(1)
        while marker == b"\xff":  # fill bytes
            marker = f.read(1)
        if not marker:
            raise _bad(path, "truncated JPEG: no frame header (SOF) before the end of the file")
        m = marker[0]
        if m in (0xD8, 0x01) or 0xD0 <= m <= 0xD7:  # SOI, TEM, RSTn: no length
            continue
        if m == 0xD9:
            raise _bad(path, "corrupt JPEG: end of image before any frame header (SOF)")
        raw = f.read(2)
        if len(raw) < 2:
            raise _bad(path, "truncated JPEG: cut inside a marker segment")
        length = struct.unpack(">H", raw)[0]
        if length < 2:
            raise _bad(path, f"corrupt JPEG: marker 0x{m:02x} has length {length}")
        if 0xC0 <= m <= 0xCF and m not in (0xC4, 0xC8, 0xCC):
            body = f.read(6)
            if len(body) < 6:
                raise _bad(path, "truncated JPEG: cut inside the frame header (SOF)")
            bits, h, w, nc = struct.unpack(">BHHB", body)
            if h == 0:
                raise _bad(path, "JPEG with its height defined later (DNL marker) is not supported")
            return ImageHeader("jpeg", w, h, nc, bits)
        f.seek(length - 2, 1)


def _bmp(path: Path, f) -> ImageHeader:
    head = f.read(30)
    if len(head) < 26:
        raise _bad(path, "truncated BMP header")
    size = struct.unpack("<I", head[14:18])[0]
    if size == 12:  # BITMAPCOREHEADER: 16-bit unsigned sizes
        w, h = struct.unpack("<HH", head[18:22])
        bits = struct.unpack("<H", head[24:26])[0]
    elif size >= 40 and len(head) >= 30:
        w, h = struct.unpack("<ii", head[18:26])
        bits = struct.unpack("<H", head[28:30])[0]
    else:
        raise _bad(path, f"unsupported BMP header (size {size})")
    if w <= 0 or h in (0, -(1 << 31)):
        raise _bad(path, f"invalid BMP size {w} x {h}")
    return ImageHeader("bmp", w, abs(h), {32: 4, 24: 3}.get(bits, 1), bits)


_TIFF_TYPES = {1: ("B", 1), 3: ("H", 2), 4: ("I", 4), 16: ("Q", 8)}  # BYTE, SHORT, LONG, LONG8


def _tiff(path: Path, f) -> ImageHeader:
    head = f.read(16)
    order = "<" if head[:2] == b"II" else ">"
    magic = struct.unpack(order + "H", head[2:4])[0]
    big = magic == 43
    if big:
        offset = struct.unpack(order + "Q", head[8:16])[0]
        count_fmt, entry_size, inline = "Q", 20, 8
    else:
        offset = struct.unpack(order + "I", head[4:8])[0]
        count_fmt, entry_size, inline = "H", 12, 4
    file_size = os.fstat(f.fileno()).st_size
    if offset >= file_size:  # also keeps seek() away from offsets no file can have
        raise _bad(path, "truncated TIFF: the first image directory lies past the end of the file")
    f.seek(offset)
    raw = f.read(struct.calcsize(count_fmt))
    if len(raw) < struct.calcsize(count_fmt):
        raise _bad(path, "truncated TIFF: the first image directory lies past the end of the file")
    n = struct.unpack(order + count_fmt, raw)[0]
    if not 0 < n <= _MAX_IFD_ENTRIES:
        raise _bad(path, f"corrupt TIFF: first image directory has {n} entries")
    table = f.read(n * entry_size)
    if len(table) < n * entry_size:
        raise _bad(path, "truncated TIFF: cut inside the first image directory")
    tags: dict[int, int] = {}
    geo = False
    for k in range(n):
        e = table[k * entry_size : (k + 1) * entry_size]
        tag, typ = struct.unpack(order + "HH", e[:4])
        geo = geo or tag in (33550, 33922, 34264)
        if tag not in (256, 257, 258, 277, 284, 322) or typ not in _TIFF_TYPES:
            continue
        count = struct.unpack(order + ("Q" if big else "I"), e[4 : 12 if big else 8])[0]
        code, size = _TIFF_TYPES[typ]
        value = e[12:] if big else e[8:]
        if count * size > inline:  # stored elsewhere (BitsPerSample of RGB): the first value is enough
            ptr = struct.unpack(order + ("Q" if big else "I"), value)[0]
            if ptr >= file_size:
                raise _bad(path, f"truncated TIFF: tag {tag} points past the end of the file")
            pos = f.tell()
            f.seek(ptr)
            value = f.read(size)
            f.seek(pos)
            if len(value) < size:
                raise _bad(path, f"truncated TIFF: tag {tag} points past the end of the file")
        if count:
            tags[tag] = struct.unpack(order + code, value[:size])[0]
    if 256 not in tags or 257 not in tags:
        raise _bad(path, "corrupt TIFF: no ImageWidth/ImageLength tags")
    return ImageHeader(
        "tiff",
        int(tags[256]),
        int(tags[257]),
        int(tags.get(277, 1)),
        int(tags.get(258, 1)),
        planar=tags.get(284, 1) == 2,
        tiled=322 in tags,
        geotiff=geo,
    )


def read_header(path: str | Path) -> ImageHeader:
    """The header of a PNG/JPEG/BMP/TIFF/BigTIFF file, read without decoding any pixel.

    Raises:
        FileNotFoundError: no such file. ValueError: another format, or a corrupt/truncated header (naming the
            file and the problem); a zero width or height is an error too.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image not found: {path}")
    with open(path, "rb") as f:
        sig = f.read(8)
        f.seek(0)
        try:
            if sig == b"\x89PNG\r\n\x1a\n":
                h = _png(path, f)
            elif sig[:2] == b"\xff\xd8":
                h = _jpeg(path, f)
            elif sig[:2] == b"BM":
                h = _bmp(path, f)
            elif sig[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
                h = _tiff(path, f)
            elif not sig:
                raise _bad(path, "empty file (0 bytes)")
            else:
                raise _bad(path, "not a PNG, JPEG, BMP or TIFF file (unknown signature)")
        except (struct.error, OSError, OverflowError) as e:  # a short read, or an offset past any file (seek)
            raise _bad(path, f"truncated or corrupt image header ({e})") from None
    if h.width <= 0 or h.height <= 0:
        raise _bad(path, f"zero-size image ({h.width} x {h.height}) in the {h.format.upper()} header")
    return h


def image_size(path: str | Path) -> tuple[int, int]:
    """``(width, height)`` from the header only (:func:`read_header`)."""
    h = read_header(path)
    return h.width, h.height


# ---------------------------------------------------------------------------------------------- decoding
def check_complete(path: Path, data: bytes | np.ndarray, fmt: str) -> None:
    """Refuse a JPEG without its end-of-image marker after the scan, or a PNG without its IEND chunk (files cut
    short: OpenCV decodes them with a warning on stderr and grey/black fill)."""
    buf = bytes(data) if not isinstance(data, bytes) else data
    if fmt == "jpeg":
        sos = buf.find(b"\xff\xda")
        # Inside entropy-coded data 0xFF is always followed by 0x00 or a restart marker, so FF D9 after the first
        # scan is the end of the image (an EXIF thumbnail's own FF D9 lies before the scan).
        if sos < 0 or buf.find(b"\xff\xd9", sos) < 0:
            raise _bad(path, "truncated JPEG (no end-of-image marker after the image data): refusing to decode it")
    elif fmt == "png":
        if buf.rfind(b"IEND") < 0:
            raise _bad(path, "truncated PNG (no IEND chunk): refusing to decode it")


# What libjpeg/libpng print (to stderr, through OpenCV) when they decode a damaged file and fill in the rest.
_CORRUPT = ("Corrupt JPEG data", "Premature end of JPEG file", "JPEG datastream contains no image", "libpng error")
_STDERR_LOCK = threading.Lock()


@contextlib.contextmanager
def _library_warnings():
    """Capture what C libraries write to file descriptor 2 inside the block (yields a list that receives the
    text); everything captured is written back to stderr afterwards, so nothing is hidden from the user."""
    out: list[str] = []
    with _STDERR_LOCK:
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError):  # no usable fd 2 (embedded interpreters): decode without the check
            yield out
            return
        with tempfile.TemporaryFile() as tmp:
            os.dup2(tmp.fileno(), 2)
            try:
                yield out
            finally:
                os.dup2(saved, 2)
                os.close(saved)
                tmp.seek(0)
                text = tmp.read().decode("utf-8", "replace")
                out.append(text)
                if text:
                    sys.stderr.write(text)


def decode_image(path: str | Path, max_pixels: int | None = None) -> np.ndarray:
    """Decode a PNG/JPEG/BMP/TIFF with OpenCV, unchanged (bit depth and channels as stored, BGR order), after
    checking its header against the pixel budget and that the file is complete.

    Returns:
        np.ndarray ``[H, W]`` or ``[H, W, C]`` (uint8 or uint16 as stored).

    Raises:
        FileNotFoundError; ImageTooLargeError (before decoding); ValueError naming the file for a corrupt,
        truncated or undecodable file.
    """
    import cv2  # noqa: PLC0415 - only here: headers need no OpenCV

    path = Path(path)
    header = read_header(path)
    check_pixels(str(path), header.width, header.height, max_pixels)
    data = np.fromfile(path, np.uint8)  # not cv2.imread: it fails silently on non-ASCII paths
    check_complete(path, data.tobytes() if header.format in ("jpeg", "png") else b"", header.format)
    error: str | None
    with _library_warnings() as messages:
        try:
            image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
        except cv2.error as e:  # e.g. OpenCV's own pixel cap, or a codec error
            image, error = None, str(e).strip().splitlines()[-1]
        else:
            error = None
    if error is not None:
        raise _bad(path, f"OpenCV: {error}")
    damage = [ln for ln in "".join(messages).splitlines() if ln.startswith(_CORRUPT)]
    if damage:  # libjpeg decoded a damaged stream and filled the rest in: refuse instead of using grey pixels
        raise _bad(path, f"damaged image data ({damage[0].strip()}): refusing to use it")
    if image is None or image.size == 0:
        raise _bad(path, f"corrupt file, or not a {header.format.upper()}")
    if image.shape[:2] != (header.height, header.width):
        raise _bad(
            path,
            f"decoded size {image.shape[1]} x {image.shape[0]} differs from the header's "
            f"{header.width} x {header.height} (corrupt file)",
        )
    return image


__all__ = [
    "DEFAULT_MAX_PIXELS",
    "ImageTooLargeError",
    "ImageHeader",
    "resolve_max_pixels",
    "check_pixels",
    "read_header",
    "image_size",
    "check_complete",
    "decode_image",
]
