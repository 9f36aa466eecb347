"""What the page shows of a result: the annotated scene, a legend, the detections table, the summary and the
downloads (written with the library's writers in :mod:`rdet.inference.io`).

Hundreds of ``class score`` labels on a scene overlap into noise, so the image carries polygons in class colours
and a label only where the object is large enough on screen for it to be read (and it does not cover another
label); the scores are in the table below the image, the colours in the legend.
"""

from __future__ import annotations

import html
import math
import zipfile
from pathlib import Path

import cv2
import numpy as np

from rdet.detections import Detections
from rdet.inference import io

SHOWN_WIDTH = 1000  # about how wide the page shows the result image (CSS pixels)
LABEL_PX = 12  # label text height on screen
MIN_LABEL_SIDE_PX = 14  # an object gets a label when its shorter side spans this many screen pixels ...
MIN_LABEL_LONG_PX = 36  # ... and its longer side this many
MAX_LABELS = 60
MAX_ROWS = 500  # rows of the detections table (by decreasing score)


def annotate(image: np.ndarray, dets: Detections, factor: float = 1.0) -> np.ndarray:
    """``image [H, W, 3]`` RGB (scene shrunk by ``factor``) with the detections drawn: polygons, and labels only
    for objects large enough on screen. Returns a new array."""
    out = io.draw_detections(image, dets, scores=False, scale=factor)
    if len(dets) == 0:
        return out
    screen = min(1.0, SHOWN_WIDTH / out.shape[1])  # screen pixels per image pixel
    font = cv2.FONT_HERSHEY_SIMPLEX
    text_h = LABEL_PX / screen  # in image pixels
    font_scale = text_h / 22.0  # FONT_HERSHEY_SIMPLEX is ~22 px high at scale 1
    thickness = max(1, round(font_scale * 1.5))
    sides = dets.boxes[:, 2:4].abs().double().numpy() * factor * screen
    polys = dets.polygons().double().numpy().reshape(-1, 4, 2) * factor
    placed: list[tuple[int, int, int, int]] = []
    for i in np.argsort(-dets.scores.double().numpy(), kind="stable"):
        if len(placed) >= MAX_LABELS:
            break
        if sides[i].min() < MIN_LABEL_SIDE_PX or sides[i].max() < MIN_LABEL_LONG_PX:
            continue
        label = int(dets.labels[i])
        name = dets.class_names[label] if 0 <= label < len(dets.class_names) else str(label)
        text = f"{name} {float(dets.scores[i]):.2f}"
        (tw, th), base = cv2.getTextSize(text, font, font_scale, thickness)
        x, y = int(polys[i][:, 0].min()), int(polys[i][:, 1].min())
        x = min(max(x, 0), max(out.shape[1] - tw, 0))
        y = max(y, th + base)
        rect = (x, y - th - base, x + tw, y)
        if any(rect[0] < r[2] and r[0] < rect[2] and rect[1] < r[3] and r[1] < rect[3] for r in placed):
            continue
        placed.append(rect)
        color = io.class_color(label)
        cv2.rectangle(out, rect[:2], rect[2:], color, -1)
        ink = (0, 0, 0) if 0.299 * color[0] + 0.587 * color[1] + 0.114 * color[2] > 150 else (255, 255, 255)
        cv2.putText(out, text, (x, y - base), font, font_scale, ink, thickness, cv2.LINE_AA)
    return out


def legend_html(dets: Detections) -> str:
    """One coloured swatch per class with detections: ``name count``, most frequent first."""
    counts = dets.counts()
    if not counts:
        return ""
    index = {n: i for i, n in enumerate(dets.class_names)}
    items = []
    for name, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        r, g, b = io.class_color(index.get(name, 0))
        items.append(
            f'<span class="rdet-legend-item"><span class="rdet-swatch" style="background:rgb({r},{g},{b})"></span>'
            f"{html.escape(name)} <b>{n}</b></span>"
        )
    return '<div class="rdet-legend">' + "".join(items) + "</div>"


TABLE_HEADERS = ["#", "class", "score", "x", "y", "w", "h", "angle"]


def table_rows(dets: Detections) -> list[list]:
    """Rows ``[#, class, score, cx, cy, w, h, angle in degrees]`` by decreasing score (at most ``MAX_ROWS``),
    in scene pixels."""
    rows = []
    order = np.argsort(-dets.scores.double().numpy(), kind="stable")[:MAX_ROWS]
    boxes = dets.boxes.double().numpy()
    for rank, i in enumerate(order, 1):
        label = int(dets.labels[i])
        name = dets.class_names[label] if 0 <= label < len(dets.class_names) else str(label)
        cx, cy, w, h, a = boxes[i]
        rows.append(
            [
                rank,
                name,
                round(float(dets.scores[i]), 3),
                round(cx, 1),
                round(cy, 1),
                round(w, 1),
                round(h, 1),
                round(math.degrees(a), 1),
            ]
        )
    return rows


def write_downloads(out_dir: Path, image_id: str, annotated: np.ndarray, dets: Detections, georef) -> dict:
    """The annotated PNG, the GeoJSON and the DOTA Task1 submission of one result, in ``out_dir``.

    GeoJSON: RFC 7946 lon/lat for a georeferenced scene, else ``<id>.pixels.geojson`` in pixel coordinates
    (:func:`rdet.inference.io.write_scene_geojson`). Task1: the official ``Task1_<class>.txt`` files (one per class
    of the model, as the DOTA server wants them) zipped as ``<id>_Task1.zip``. ``note``: what the visitor should
    know about the GeoJSON ("" if nothing).
    """
    geojson, note = io.write_scene_geojson(out_dir, image_id, dets, georef)
    task1_dir = out_dir / "Task1"
    files = io.update_task1_dir(task1_dir, {image_id: dets})
    task1 = out_dir / f"{image_id}_Task1.zip"
    with zipfile.ZipFile(task1, "w", zipfile.ZIP_DEFLATED) as z:
        for f in files:
            z.write(f, f.name)
    png = io.write_png(out_dir / f"{image_id}.png", annotated)
    # a georeferenced scene written in pixel space (no pyproj, unusual CRS): say why, without the server's path
    note = f"GeoJSON in pixel coordinates: {note.split(': ', 1)[-1]}" if note else ""
    return {"png": png, "geojson": geojson, "task1": task1, "note": note}
