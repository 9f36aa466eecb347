"""Scenes in, results out: reading scenes of any size (re-exported from :mod:`rdet.inference.scene`, with the
pixel budget and georeferencing), and the output writers.

Reading (:func:`open_scene`) returns a :class:`Scene` with ``read(x, y, w, h) -> uint8 RGB [h, w, 3]``; its size
is read from the header and checked against the pixel budget (``max_pixels``, :data:`DEFAULT_MAX_PIXELS`) before
anything is decoded (:class:`ImageTooLargeError`); :func:`image_size` reads the header only and
:func:`tile_count` says how many windows a tiling would take. See :mod:`rdet.inference.scene` for the readers
(OpenCV, tifffile windows incl. planar TIFF, rasterio), bit depth, bands and georeferencing (:class:`GeoRef`).

Writers (re-exported from :mod:`rdet.inference.outputs`, which documents the output layout of ``rdet predict``):
:func:`update_task1_dir` (official ``Task1_<class>.txt`` files, merged per image id), :func:`write_geojson` /
:func:`write_scene_geojson` (RFC 7946: WGS84 lon/lat when georeferenced, else a ``.pixels.geojson``),
:func:`write_json`, and :func:`draw_detections` / :func:`write_png` (the annotated image).
"""

from __future__ import annotations

from rdet.inference.outputs import (  # noqa: F401 - the writers, re-exported here
    PALETTE,
    class_color,
    draw_detections,
    read_geojson,
    read_json,
    read_task1_txt,
    task1_lines,
    to_geojson,
    to_json,
    update_task1_dir,
    write_geojson,
    write_json,
    write_png,
    write_scene_geojson,
    write_task1_txt,
)
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
    "update_task1_dir",
    "write_scene_geojson",
    "PALETTE",
    "class_color",
    "draw_detections",
    "write_png",
]
