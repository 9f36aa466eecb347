"""A scene reader backed by rasterio (GDAL): windows, any bit depth, multi-band, nodata, georeferencing.

Optional (``pip install rdet[geo]``). :func:`rdet.inference.scene.open_scene` uses it for TIFFs when rasterio is
installed (``reader='auto'``) and for any GDAL-readable raster with ``reader='rasterio'``. Only the window asked
for is read (GDAL reads the blocks under it), so memory grows with the tile batch, not with the scene.

* bit depth: ``depth='scale'`` (uint16 / 257) or ``'stretch'`` (2nd..98th percentile per band, sampled over the
  scene with nodata excluded) turns 16-bit, int16 or float rasters into 8-bit RGB (``Scene.conversion`` says which);
* bands: 1 = grey, 3/4 = RGB(+alpha/NIR), more need ``bands=(r, g, b)`` (1-based, as GDAL numbers them);
* nodata: pixels equal to the dataset's nodata value in every used band are read as 0 (``Scene.nodata``);
* georeferencing: ``Scene.georef`` from the dataset's affine transform and CRS (EPSG code when it has one), checked
  like the tifffile reader's (a transform that is not finite or has a zero pixel scale is an error naming the file).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from rdet.data.images import check_pixels, read_header
from rdet.inference.georef import GeoRef, check_georef
from rdet.inference.scene import Scene


class RasterioScene(Scene):
    """A raster read window by window with rasterio (module docstring)."""

    def __init__(self, path: Path, max_pixels: int | None = None, depth: str = "error", bands=None):
        import rasterio

        self.source, self.reader = str(path), "rasterio"
        self._ds = None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
                self._ds = rasterio.open(path)
        except Exception as e:  # noqa: BLE001 - rasterio/GDAL errors re-raised naming the file
            raise ValueError(f"{path}: cannot open with rasterio (corrupt or unsupported raster): {e}") from None
        try:
            self._open(path, max_pixels, depth, bands)
        except BaseException:
            self.close()
            raise

    def _open(self, path: Path, max_pixels, depth, bands) -> None:
        ds = self._ds
        self.width, self.height = int(ds.width), int(ds.height)
        if self.width == 0 or self.height == 0 or ds.count == 0:
            raise ValueError(f"{path}: zero-size raster ({self.width} x {self.height}, {ds.count} bands)")
        check_pixels(str(path), self.width, self.height, max_pixels)  # before any pixel is read
        if len(set(ds.dtypes)) != 1:
            raise ValueError(f"{path}: bands of different types {sorted(set(ds.dtypes))}; rdet reads one type")
        self.nodata = None if ds.nodata is None else float(ds.nodata)
        self._setup(np.dtype(ds.dtypes[0]), int(ds.count), depth, bands)
        self.georef = self._georef(path)

    def _georef(self, path: Path) -> GeoRef | None:
        ds = self._ds
        t = ds.transform
        if ds.crs is None and t.is_identity:
            # GDAL's answer for a raster without georeferencing -- and for GeoTIFF tags it could not use (a zero
            # pixel scale): those must not pass as a plain image
            try:
                geotiff = read_header(path).geotiff
            except ValueError:
                geotiff = False
            if geotiff:
                raise ValueError(
                    f"{path}: bad georeferencing: GDAL finds no valid pixel-to-map transform in its GeoTIFF tags "
                    f"(a zero pixel scale?)"
                )
            return None
        epsg = None
        if ds.crs is not None:
            try:
                epsg = ds.crs.to_epsg()
            except Exception:  # noqa: BLE001 - a CRS without an EPSG code is still a CRS
                epsg = None
        return check_georef(GeoRef((t.c, t.a, t.b, t.f, t.d, t.e), epsg), str(path))

    def _raw(self, x: int, y: int, w: int, h: int) -> np.ndarray:
        from rasterio.windows import Window

        used = sorted(set(self._bands))
        try:
            data = self._ds.read([b + 1 for b in used], window=Window(x, y, w, h))  # [k, h, w]
        except Exception as e:  # noqa: BLE001 - a corrupt block: re-raised naming the file and window
            raise ValueError(f"{self.source}: cannot read window x={x} y={y} w={w} h={h}: {e}") from None
        out = np.zeros((h, w, self._ds.count), data.dtype)
        for k, b in enumerate(used):
            out[..., b] = data[k]
        return out

    def close(self) -> None:
        if getattr(self, "_ds", None) is not None:
            self._ds.close()
            self._ds = None


__all__ = ["RasterioScene"]
