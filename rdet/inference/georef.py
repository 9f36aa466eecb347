"""Georeferencing of scenes: the pixel -> map transform and CRS (:class:`GeoRef`), read from GeoTIFF tags.

Readers (:mod:`rdet.inference.scene`, :mod:`rdet.inference.scene_rasterio`) build a :class:`GeoRef` and check it
with :func:`check_georef`, so a transform that is not finite, or has a zero pixel scale, is an error naming the
file instead of ``NaN`` or collapsed points in the outputs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


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
    try:
        v = [int(x) for x in values]
    except (TypeError, ValueError, OverflowError) as e:
        raise ValueError(f"GeoKeyDirectory holds a non-integer value ({e})") from None
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
    return GeoRef((t[0], t[1], t[2], t[3], t[4], t[5]), epsg)


def check_georef(georef: GeoRef | None, source: str) -> GeoRef | None:
    """Raise ``ValueError`` naming ``source`` when the transform is not finite or not invertible (a zero pixel
    scale would collapse every detection onto one point); ``None`` passes."""
    if georef is None:
        return None
    t = georef.transform
    if not all(math.isfinite(v) for v in t):
        raise ValueError(f"{source}: bad georeferencing: the pixel-to-map transform {t} is not finite")
    if t[1] * t[5] - t[2] * t[4] == 0:
        raise ValueError(f"{source}: bad georeferencing: the pixel-to-map transform {t} has a zero pixel scale")
    return georef


# ---------------------------------------------------------------------------------------------- scenes
