"""Reading scenes of any size: formats, the pixel budget, window reads, bit depth and bands, georeferencing.

:func:`open_scene` returns a :class:`Scene` with ``read(x, y, w, h) -> uint8 RGB [h, w, 3]``. Before any pixel is
decoded, the size is read from the file header and checked against the pixel budget (``max_pixels``, default
:data:`DEFAULT_MAX_PIXELS`; :class:`ImageTooLargeError` names the file, its size, the budget and how to raise it).

Readers (``Scene.reader``):

* ``'opencv'`` -- PNG / JPEG / BMP are decoded whole (OpenCV cannot read a window of them, so the budget is what
  bounds their memory: ~6 bytes per pixel at the peak); a truncated JPEG/PNG is refused, not grey-filled.
* ``'tifffile-windows'`` -- TIFF / GeoTIFF with the optional ``tifffile``: only the tiles or strips a window
  touches are read and decoded, for chunky (interleaved) *and* planar (band-by-band) layouts, so memory grows
  with the tile batch, not with the scene. Layouts that cannot be windowed (palettes, 3-D stacks) are decoded
  whole (``'tifffile-whole'``), after the budget check.
* ``'rasterio'`` -- GeoTIFF and anything GDAL reads, with the optional ``rasterio`` (extra ``geo``): windows,
  any bit depth, multi-band, nodata; chosen for TIFFs when rasterio is installed (``reader='auto'``) or by
  ``reader='rasterio'`` (:mod:`rdet.inference.scene_rasterio`).
* ``'array'`` -- a numpy array ``[H, W]`` / ``[H, W, 1|3|4]``, **RGB** channel order.

Bit depth (``depth``): 8-bit pixels are used as they are. Other depths are converted only when asked, and the
scene says which conversion it applied (``Scene.conversion``): ``'error'`` (default) refuses them, ``'scale'``
maps the full uint16 range onto 0..255 (value / 257), ``'stretch'`` maps each band's 2nd..98th percentile
(sampled over the whole scene, nodata excluded) onto 0..255, the usual display stretch for 11/12-bit satellite
data that would look black when scaled.

Bands (``bands``): 1 band is grey (repeated to RGB), 2 bands grey + alpha, 3 RGB, 4 RGB + alpha/NIR (the first
three are used); more bands need ``bands=(r, g, b)`` (1-based, GDAL's numbering).

Georeferencing (:class:`GeoRef`) comes from the GeoTIFF tags ModelPixelScale + ModelTiepoint or
ModelTransformation, and the GeoKeys (EPSG code of the projected or geographic CRS), or from rasterio. Pixel
coordinates are continuous (pixel ``(i, j)`` covers ``[i, i+1) x [j, j+1)``), which matches GeoTIFF's
PixelIsArea; for PixelIsPoint rasters the map coordinates refer to pixel centres and are shifted by half a pixel
(as GDAL does). A transform that is not finite or not invertible (a zero pixel scale) is an error naming the file.
"""

from __future__ import annotations

import math
import warnings
from collections import OrderedDict
from pathlib import Path

import cv2
import numpy as np
import torch

from rdet.data.images import (
    DEFAULT_MAX_PIXELS,
    ImageTooLargeError,
    check_pixels,
    decode_image,
    image_size,
    read_header,
    resolve_max_pixels,
)
from rdet.inference.georef import (
    TAG_GEOKEYS,
    TAG_PIXEL_SCALE,
    TAG_TIEPOINT,
    TAG_TRANSFORMATION,
    GeoRef,
    check_georef,
    georef_from_tags,
    parse_geokeys,
)

DECODED = (".png", ".jpg", ".jpeg", ".bmp")
TIFF = (".tif", ".tiff")
SUPPORTED = DECODED + TIFF
READERS = ("auto", "opencv", "tifffile", "rasterio")
DEPTHS = ("error", "scale", "stretch")


# ---------------------------------------------------------------------------------------------- scenes
def to_rgb8(pixels: np.ndarray, source: str, bgr: bool = False) -> np.ndarray:
    """``[H, W]``, ``[H, W, 1|3|4]`` uint8 -> ``[H, W, 3]`` uint8 RGB; other dtypes raise naming ``source``."""
    if pixels.dtype != np.uint8:
        raise ValueError(_depth_message(pixels.dtype, source))
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    if pixels.ndim != 3 or pixels.shape[2] not in (1, 3, 4):
        raise ValueError(f"{source}: expected an image [H, W], [H, W, 3] or [H, W, 4], got shape {pixels.shape}")
    if pixels.shape[2] == 1:
        return np.repeat(pixels, 3, axis=2)
    if bgr:
        return cv2.cvtColor(pixels, cv2.COLOR_BGRA2RGB if pixels.shape[2] == 4 else cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(pixels[..., :3])


def _depth_message(dtype: np.dtype, source: str) -> str:
    return (
        f"{source}: {np.dtype(dtype).itemsize * 8}-bit {np.dtype(dtype)} image; rdet reads 8-bit imagery (uint8). "
        f"Convert it when opening: depth='stretch' (2..98th percentile per band) or depth='scale' (uint16 / 257), "
        f"e.g. rdet.predict(rdet.inference.io.open_scene(path, depth='stretch'), model), or convert the file "
        f"first (`gdal_translate -ot Byte -scale in.tif out.tif`)"
    )


def _default_bands(count: int, source: str) -> tuple[int, ...]:
    if count in (1, 2):
        return (1,)  # grey (+ alpha)
    if count in (3, 4):
        return (1, 2, 3)  # RGB (+ alpha or NIR)
    raise ValueError(f"{source}: {count} bands; choose the three to show as RGB with bands=(r, g, b) (1-based)")


class Scene:
    """A scene to run on: ``width``, ``height``, ``read(x, y, w, h)``; ``georef`` when georeferenced.

    ``reader`` says how pixels are read (``'array'``, ``'opencv'``, ``'tifffile-windows'``, ...), ``conversion``
    how they become 8-bit RGB (``'none'``, ``'scale'``, ``'stretch'``), ``nodata`` the no-data value (pixels
    equal to it in every used band are read as 0), or ``None``.

    Subclasses provide ``_raw(x, y, w, h) -> [h, w, bands]`` in the stored dtype and call :meth:`_setup`.
    """

    source: str = "<array>"
    reader: str = "array"
    georef: GeoRef | None = None
    nodata: float | None = None
    conversion: str = "none"

    def __init__(
        self,
        image: np.ndarray,
        source: str = "<array>",
        reader: str = "array",
        max_pixels: int | None = None,
        depth: str = "error",
        bands: tuple[int, ...] | None = None,
    ):
        self.source, self.reader = source, reader
        image = np.asarray(image)
        if image.ndim == 2:
            image = image[..., None]
        if image.ndim != 3 or image.shape[2] == 0:
            raise ValueError(f"{source}: expected an image [H, W] or [H, W, C], got shape {image.shape}")
        if image.shape[0] == 0 or image.shape[1] == 0:
            raise ValueError(f"{source}: zero-size image ({image.shape[1]} x {image.shape[0]})")
        self.height, self.width = image.shape[:2]
        check_pixels(source, self.width, self.height, max_pixels)
        self._image = image
        self._setup(image.dtype, image.shape[2], depth, bands)

    # -- set-up shared by every reader: validates dtype, depth policy and bands before anything is decoded
    def _setup(self, dtype, count: int, depth: str, bands: tuple[int, ...] | None) -> None:
        if depth not in DEPTHS:
            raise ValueError(f"depth must be one of {DEPTHS}, got {depth!r}")
        self._dtype = np.dtype(dtype)
        if bands is None:
            bands = _default_bands(count, self.source)
        bands = tuple(int(b) for b in bands)
        if len(bands) not in (1, 3) or not all(1 <= b <= count for b in bands):
            raise ValueError(f"{self.source}: bands must be 1 or 3 band numbers in 1..{count}, got {bands}")
        self._bands = [b - 1 for b in bands]
        self._range: np.ndarray | None = None
        if self._dtype == np.uint8:
            self.conversion = "none"
        elif depth == "error" or self._dtype.kind not in "uif" or self._dtype == np.bool_:
            raise ValueError(_depth_message(self._dtype, self.source))
        elif depth == "scale" and self._dtype != np.uint16:
            raise ValueError(
                f"{self.source}: depth='scale' maps uint16 to 0..255; a {self._dtype} image needs 'stretch'"
            )
        else:
            self.conversion = depth

    def _raw(self, x: int, y: int, w: int, h: int) -> np.ndarray:
        return self._image[y : y + h, x : x + w]

    def read(self, x: int, y: int, w: int, h: int) -> np.ndarray:
        """Pixels ``[y, y+h) x [x, x+w)`` as uint8 RGB ``[h, w, 3]`` (must lie inside the scene)."""
        self._check(x, y, w, h)
        return self._convert(self._raw(x, y, w, h))

    def _convert(self, raw: np.ndarray) -> np.ndarray:
        """Stored pixels ``[h, w, bands]`` -> uint8 RGB ``[h, w, 3]`` (band choice, depth conversion, nodata)."""
        px = raw[..., self._bands]
        nodata = None
        if self.nodata is not None and math.isfinite(self.nodata):
            nodata = (px == np.asarray(self.nodata, px.dtype)).all(-1)
        if self.conversion == "scale":
            px = np.rint(px / 257.0).astype(np.uint8)
        elif self.conversion == "stretch":
            lo, hi = self.stretch_range()
            f = px.astype(np.float32)
            px = np.clip(np.rint((f - lo) * (255.0 / np.maximum(hi - lo, 1e-12))), 0, 255).astype(np.uint8)
        if nodata is not None and nodata.any():
            px = px.copy()
            px[nodata] = 0
        if px.shape[-1] == 1:
            return np.repeat(px, 3, axis=-1)
        return np.ascontiguousarray(px)

    def stretch_range(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-band 2nd and 98th percentiles ``([B], [B])`` of the used bands, from up to 8 x 8 windows of
        256 px spread over the scene (nodata and non-finite values excluded). Computed once."""
        if self._range is None:
            n = 8
            side = 256
            xs = np.unique(np.linspace(0, max(self.width - side, 0), n).astype(int))
            ys = np.unique(np.linspace(0, max(self.height - side, 0), n).astype(int))
            w, h = min(side, self.width), min(side, self.height)
            samples = [
                self._raw(int(x), int(y), w, h)[..., self._bands].reshape(-1, len(self._bands)) for y in ys for x in xs
            ]
            v = np.concatenate(samples).astype(np.float64)
            ok = np.isfinite(v).all(1)
            if self.nodata is not None and math.isfinite(self.nodata):
                ok &= ~(v == self.nodata).all(1)
            v = v[ok]
            if len(v) == 0:
                lo, hi = np.zeros(len(self._bands)), np.ones(len(self._bands))
            else:
                lo, hi = np.percentile(v, 2, axis=0), np.percentile(v, 98, axis=0)
            self._range = (lo.astype(np.float32), hi.astype(np.float32))
        return self._range

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
    """A TIFF read window by window with ``tifffile``: only the tiles/strips a window touches are decoded, in the
    chunky (RGBRGB...) and the planar (RR..GG..BB..) layout alike."""

    def __init__(self, path: Path, max_pixels: int | None = None, depth: str = "error", bands=None):
        import tifffile

        self.source, self.reader = str(path), "tifffile-windows"
        try:
            self._tif = tifffile.TiffFile(path)
            page = self._tif.pages[0]
        except Exception as e:  # noqa: BLE001 - re-raised naming the file
            raise ValueError(f"{path}: cannot read as TIFF (corrupt or not a TIFF): {e}") from e
        try:
            self._open(page, path, max_pixels, depth, bands)
        except BaseException:
            self.close()
            raise

    def _open(self, page, path: Path, max_pixels, depth, bands) -> None:
        self._page = page
        self.height, self.width = int(page.imagelength), int(page.imagewidth)
        if self.height == 0 or self.width == 0:
            raise ValueError(f"{path}: zero-size image ({self.width} x {self.height})")
        check_pixels(str(path), self.width, self.height, max_pixels)  # before anything is decoded
        spp = int(page.samplesperpixel)
        self._planar = page.planarconfig == 2 and spp > 1
        self._setup(page.dtype, spp, depth, bands)
        tags = {
            code: page.tags[code].value
            for code in (TAG_PIXEL_SCALE, TAG_TIEPOINT, TAG_TRANSFORMATION, TAG_GEOKEYS)
            if code in page.tags
        }
        try:
            georef = georef_from_tags(
                tags.get(TAG_PIXEL_SCALE), tags.get(TAG_TIEPOINT), tags.get(TAG_TRANSFORMATION), tags.get(TAG_GEOKEYS)
            )
        except (ValueError, TypeError, IndexError) as e:
            raise ValueError(f"{path}: bad georeferencing tags: {e}") from None
        self.georef = check_georef(georef, str(path))
        # Windowed reads need one image plane of grey/RGB/YCbCr samples, one segment per chunk; anything else
        # (palettes, CMYK, 3-D stacks) is decoded whole by tifffile -- after the budget check above.
        self._per_plane = len(page.dataoffsets) // (spp if self._planar else 1)
        windowed = (
            page.photometric in (1, 2, 6)
            and page.imagedepth == 1
            and len(page.dataoffsets) == int(np.prod(page.chunked))
            and self._per_plane * (spp if self._planar else 1) == len(page.dataoffsets)
        )
        self._full = None
        if not windowed:
            self.reader = "tifffile-whole"
            full = page.asarray()
            self._full = full[..., None] if full.ndim == 2 else full
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()

    def _segment(self, index: int) -> np.ndarray:
        """Decoded tile/strip ``index`` as ``[rows, cols, samples]`` (a small LRU cache: windows overlap)."""
        if index in self._cache:
            self._cache.move_to_end(index)
            return self._cache[index]
        page, fh = self._page, self._tif.filehandle
        offset, count = page.dataoffsets[index], page.databytecounts[index]
        samples = 1 if self._planar else int(page.samplesperpixel)
        with fh.lock:
            fh.seek(offset)
            data = fh.read(count) if count else None
        if data is None:  # sparse file: a missing segment is all zero
            rows, cols = (page.tilelength, page.tilewidth) if page.is_tiled else (page.rowsperstrip, self.width)
            seg = np.zeros((min(rows, self.height), cols, samples), page.dtype)
        else:
            try:
                seg = page.decode(data, index, jpegtables=page.jpegtables, jpegheader=page.jpegheader)[0]
            except Exception as e:  # noqa: BLE001 - e.g. a codec needing `imagecodecs`; re-raised naming the file
                raise ValueError(
                    f"{self.source}: cannot decode TIFF segment {index} (compression {page.compression!s}): {e}"
                ) from e
            if seg is None:
                raise ValueError(f"{self.source}: TIFF segment {index} is empty or corrupt")
            seg = seg.reshape(seg.shape[-3:])
        self._cache[index] = seg
        if len(self._cache) > 64:
            self._cache.popitem(last=False)
        return seg

    def _raw(self, x: int, y: int, w: int, h: int) -> np.ndarray:
        if self._full is not None:
            return self._full[y : y + h, x : x + w]
        page = self._page
        spp = int(page.samplesperpixel)
        out = np.zeros((h, w, spp), page.dtype)
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
        # planar: plane p's segments follow plane p-1's; only the used bands are decoded
        planes = [(b, b * self._per_plane) for b in sorted(set(self._bands))] if self._planar else [(None, 0)]
        for band, base in planes:
            for index, top, left in segments:
                seg = self._segment(base + index)
                r0, r1 = max(y, top), min(y + h, top + seg.shape[0], self.height)
                c0, c1 = max(x, left), min(x + w, left + seg.shape[1], self.width)
                part = seg[r0 - top : r1 - top, c0 - left : c1 - left]
                if band is None:
                    out[r0 - y : r1 - y, c0 - x : c1 - x] = part
                else:
                    out[r0 - y : r1 - y, c0 - x : c1 - x, band] = part[..., 0]
        return out

    def close(self) -> None:
        if getattr(self, "_tif", None) is not None:
            self._tif.close()
            self._tif = None


def _tifffile_available() -> bool:
    try:
        import tifffile  # noqa: F401 - optional extra
    except ImportError:
        return False
    return True


def _rasterio_available() -> bool:
    try:
        import rasterio  # noqa: F401 - optional extra
    except ImportError:
        return False
    return True


def open_scene(
    image_or_path,
    max_pixels: int | None = None,
    *,
    reader: str = "auto",
    depth: str = "error",
    bands: tuple[int, ...] | None = None,
) -> Scene:
    """A :class:`Scene` from a path (PNG/JPEG/BMP/TIFF) or a numpy array (RGB order), size-checked from the header.

    Args:
        image_or_path: a path, a numpy array ``[H, W]``/``[H, W, C]``, or an opened :class:`Scene` (returned as is).
        max_pixels: pixel budget (``None``: :data:`DEFAULT_MAX_PIXELS`); checked before any decode.
        reader: ``'auto'`` (rasterio for TIFFs when installed, else tifffile, else OpenCV), ``'opencv'``,
            ``'tifffile'`` or ``'rasterio'``.
        depth: ``'error'``, ``'scale'`` or ``'stretch'``: the conversion of non-8-bit pixels (module docstring).
        bands: 1-based band numbers to read as RGB (or one band as grey); default from the band count.

    Raises:
        FileNotFoundError: no such file. ImageTooLargeError: over the pixel budget (nothing decoded).
        ValueError: unsupported format or reader, corrupt/truncated file, zero size, unconverted bit depth.
    """
    if isinstance(image_or_path, Scene):
        return image_or_path
    if reader not in READERS:
        raise ValueError(f"reader must be one of {READERS}, got {reader!r}")
    if isinstance(image_or_path, np.ndarray):
        return Scene(image_or_path, max_pixels=max_pixels, depth=depth, bands=bands)
    if isinstance(image_or_path, torch.Tensor):
        raise ValueError("pass scenes as a numpy array [H, W, 3] uint8 RGB or a file path, not a torch.Tensor")
    if not isinstance(image_or_path, (str, Path)):
        raise ValueError(f"image must be a path or a numpy array, got {type(image_or_path).__name__}")
    resolve_max_pixels(max_pixels)
    path = Path(image_or_path)
    if not path.is_file():
        raise FileNotFoundError(f"image not found: {path}")
    suffix = path.suffix.lower()
    if reader == "rasterio" or (reader == "auto" and suffix in TIFF and _rasterio_available()):
        from rdet.inference.scene_rasterio import RasterioScene  # noqa: PLC0415 - optional extra

        return RasterioScene(path, max_pixels, depth, bands)
    if suffix not in SUPPORTED:
        raise ValueError(
            f"{path}: unsupported format {suffix or '(no extension)'!r}; supported: {', '.join(SUPPORTED)}"
        )
    header = read_header(path)  # header only: size, depth and layout before any decode
    check_pixels(str(path), header.width, header.height, max_pixels)
    if header.format == "tiff" and reader != "opencv":
        if _tifffile_available():
            return TiffScene(path, max_pixels, depth, bands)
        if reader == "tifffile":
            raise ValueError(f"{path}: reader='tifffile' needs the tifffile package (pip install tifffile)")
        if header.planar or header.tiled:
            raise ValueError(
                f"{path}: a {'planar' if header.planar else 'tiled'} TIFF cannot be read window by window without "
                f"tifffile (OpenCV would decode it whole); `pip install tifffile` (or rasterio)"
            )
        warnings.warn(
            f"{path}: tifffile is not installed, so the whole TIFF is decoded with OpenCV (memory grows "
            f"with the scene) and georeferencing is ignored; `pip install tifffile` reads windows",
            stacklevel=2,
        )
    if reader == "tifffile" and header.format != "tiff":
        raise ValueError(f"{path}: reader='tifffile' reads TIFF files only (this is a {header.format.upper()})")
    image = decode_image(path, max_pixels)
    if image.ndim == 3 and image.shape[2] in (3, 4):
        image = image[..., [2, 1, 0] + ([3] if image.shape[2] == 4 else [])]  # BGR(A) -> RGB(A)
    return Scene(image, str(path), "opencv", max_pixels, depth, bands)


def tile_count(
    image_or_path, tile: int = 1024, overlap: int = 200, scales=(1.0,), max_pixels: int | None = None
) -> int:
    """How many windows ``rdet.predict`` would run on this scene with this tiling, from the header alone (nothing
    decoded; an array or opened scene is measured as it is). Checks the pixel budget too.

    Example: a 2500 x 1800 scene, tile 1024, overlap 200 -> 6.
    """
    from rdet.inference.tiling import count_windows  # noqa: PLC0415 - tiling imports rdet.ops

    if isinstance(image_or_path, Scene):
        w, h = image_or_path.width, image_or_path.height
    elif isinstance(image_or_path, np.ndarray):
        if image_or_path.ndim < 2:
            raise ValueError(f"expected an image [H, W] or [H, W, C], got shape {image_or_path.shape}")
        h, w = image_or_path.shape[:2]
    else:
        w, h = image_size(image_or_path)
    check_pixels(str(image_or_path) if isinstance(image_or_path, (str, Path)) else "<array>", w, h, max_pixels)
    return count_windows(w, h, tile, overlap, scales)


__all__ = [
    "DEFAULT_MAX_PIXELS",
    "ImageTooLargeError",
    "image_size",
    "GeoRef",
    "parse_geokeys",
    "georef_from_tags",
    "check_georef",
    "to_rgb8",
    "Scene",
    "TiffScene",
    "open_scene",
    "tile_count",
    "SUPPORTED",
    "READERS",
    "DEPTHS",
]
