"""Scene reading (PNG/JPEG/TIFF windows), georeferencing, and the writers' round trips."""

import json
import sys

import cv2
import numpy as np
import pytest
import torch

from rdet.detections import Detections
from rdet.inference import io
from rdet.ops import box_iou_rotated

KEYS_UTM33 = (1, 1, 0, 2, 1025, 0, 1, 1, 3072, 0, 1, 32633)  # PixelIsArea, EPSG:32633 (WGS 84 / UTM 33N)


def sample_dets() -> Detections:
    boxes = torch.tensor(
        [[10.0, 20.0, 8.0, 4.0, 0.0], [50.5, 40.25, 30.0, 10.0, 0.4], [80.0, 30.0, 12.0, 6.0, -1.0]],
        dtype=torch.float64,
    )
    scores = torch.tensor([0.9, 0.75, 0.5], dtype=torch.float64)
    return Detections(boxes, scores, torch.tensor([1, 0, 1]), ["plane", "ship"])


# ------------------------------------------------------------------------------------------------ reading
def test_png_jpeg_read_as_rgb(tmp_path):
    bgr = np.zeros((6, 9, 3), np.uint8)
    bgr[..., 2] = 200  # red in OpenCV's BGR order
    cv2.imwrite(str(tmp_path / "red.png"), bgr)
    scene = io.open_scene(tmp_path / "red.png")
    assert (scene.width, scene.height, scene.reader) == (9, 6, "opencv")
    assert scene.read(2, 1, 3, 4).tolist() == [[[200, 0, 0]] * 3] * 4
    cv2.imwrite(str(tmp_path / "gray.png"), np.full((5, 5), 77, np.uint8))
    assert io.open_scene(tmp_path / "gray.png").read(0, 0, 5, 5).reshape(-1, 3).tolist() == [[77, 77, 77]] * 25
    bgra = np.dstack([bgr, np.full((6, 9), 10, np.uint8)])
    cv2.imwrite(str(tmp_path / "rgba.png"), bgra)
    assert io.open_scene(tmp_path / "rgba.png").read(0, 0, 1, 1).tolist() == [[[200, 0, 0]]]
    with pytest.raises(ValueError, match="outside the 9x6 scene"):
        scene.read(7, 0, 3, 1)


def test_array_scene_and_read_all_shrinks():
    img = np.zeros((100, 300, 3), np.uint8)
    img[:, 150:] = 255
    scene = io.open_scene(img)
    small, f = scene.read_all(max_side=150)
    assert f == 0.5 and small.shape == (50, 150, 3)
    assert small[:, :74].max() == 0 and small[:, 76:].min() == 255
    with pytest.raises(ValueError, match="float64 image"):
        io.open_scene(np.zeros((4, 4, 3)))


# ------------------------------------------------------------------------------------------------ georeferencing
def test_georef_from_tags_known_answers():
    assert io.parse_geokeys(KEYS_UTM33) == {1025: 1, 3072: 32633}
    g = io.georef_from_tags((0.5, 0.5, 0.0), (0, 0, 0, 500000.0, 4000000.0, 0.0), None, KEYS_UTM33)
    assert g.transform == (500000.0, 0.5, 0.0, 4000000.0, 0.0, -0.5) and g.crs == "EPSG:32633"
    assert g.pixel_to_map(np.array([[10.0, 20.0]])).tolist() == [[500005.0, 3999990.0]]
    assert g.map_to_pixel(np.array([[500005.0, 3999990.0]])).tolist() == [[10.0, 20.0]]
    # tiepoint at pixel (100, 50); PixelIsPoint: map coordinates name pixel centres, so the corner is half a pixel off
    point = (1, 1, 0, 2, 1025, 0, 1, 2, 2048, 0, 1, 4326)
    g = io.georef_from_tags((0.001, 0.001, 0), (100, 50, 0, 10.0, 50.0, 0), None, point)
    assert g.epsg == 4326
    np.testing.assert_allclose(g.pixel_to_map(np.array([100.5, 50.5])), [10.0, 50.0], atol=1e-12)
    # ModelTransformation (a rotated grid) wins over scale/tiepoint
    m = (0.5, 0.1, 0, 1000.0, 0.1, -0.5, 0, 2000.0, 0, 0, 0, 0, 0, 0, 0, 1)
    g = io.georef_from_tags(None, None, m, None)
    assert g.transform == (1000.0, 0.5, 0.1, 2000.0, 0.1, -0.5) and g.epsg is None
    assert io.georef_from_tags(None, None, None, KEYS_UTM33) is None


def write_geotiff(path, img, **kwargs):
    tifffile = pytest.importorskip("tifffile")
    tifffile.imwrite(
        path,
        img,
        extratags=[
            (33550, "d", 3, (0.5, 0.5, 0.0), True),
            (33922, "d", 6, (0, 0, 0, 500000.0, 4000000.0, 0), True),
            (34735, "H", len(KEYS_UTM33), KEYS_UTM33, True),
        ],
        **kwargs,
    )


@pytest.mark.parametrize("layout", [{"tile": (64, 64), "compression": "zlib"}, {"rowsperstrip": 16}])
def test_geotiff_window_reads(tmp_path, layout):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (300, 200, 3), dtype=np.uint8)
    path = tmp_path / "scene.tif"
    write_geotiff(path, img, photometric="rgb", **layout)
    with io.open_scene(path, reader="tifffile") as scene:
        assert (scene.width, scene.height, scene.reader) == (200, 300, "tifffile-windows")
        assert scene.georef.transform == (500000.0, 0.5, 0.0, 4000000.0, 0.0, -0.5) and scene.georef.epsg == 32633
        assert np.array_equal(scene.read(70, 130, 90, 100), img[130:230, 70:160])
        # only the segments under the window were decoded: 64-px tiles, 4 across -> rows 2-3 x cols 1-2; 16-row strips
        # -> strips 8..14
        assert sorted(scene._cache) == ([9, 10, 13, 14] if "tile" in layout else list(range(8, 15)))
        assert np.array_equal(scene.read(0, 0, 200, 300), img)
        assert np.array_equal(scene.read(199, 299, 1, 1), img[299:, 199:])


def test_tiff_gray_and_16bit(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    tifffile.imwrite(
        tmp_path / "gray.tif", np.arange(64 * 64, dtype=np.uint16).reshape(64, 64).astype(np.uint8), tile=(32, 32)
    )
    scene = io.open_scene(tmp_path / "gray.tif", reader="tifffile")
    assert scene.read(0, 1, 2, 1).tolist() == [[[64, 64, 64], [65, 65, 65]]] and scene.georef is None
    tifffile.imwrite(tmp_path / "deep.tif", np.zeros((8, 8), np.uint16))
    with pytest.raises(ValueError, match="deep.tif: 16-bit uint16 image; rdet reads 8-bit"):
        io.open_scene(tmp_path / "deep.tif", reader="tifffile")
    (tmp_path / "broken.tif").write_bytes(b"II*\x00garbage")
    with pytest.raises(ValueError, match="broken.tif: (cannot read as TIFF|cannot decode)"):
        io.open_scene(tmp_path / "broken.tif", reader="tifffile")


def test_tiff_without_tifffile_falls_back_to_opencv(tmp_path, monkeypatch):
    img = np.random.default_rng(1).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "plain.tif"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    monkeypatch.setitem(sys.modules, "tifffile", None)  # import tifffile -> ImportError
    monkeypatch.setitem(sys.modules, "rasterio", None)
    with pytest.warns(UserWarning, match="tifffile is not installed"):
        scene = io.open_scene(tmp_path / "plain.tif")
    assert scene.reader == "opencv" and np.array_equal(scene.read(0, 0, 30, 20), img)


# ------------------------------------------------------------------------------------------------ writers
def test_task1_lines_known_answer_and_round_trip(tmp_path):
    dets = sample_dets()
    lines = io.task1_lines(dets, "P0001")
    # box (10, 20, 8, 4, 0): corners top-left, top-right, bottom-right, bottom-left
    assert lines[0] == "P0001 0.900000 6.00 18.00 14.00 18.00 14.00 22.00 6.00 22.00 ship"
    path = io.write_task1_txt(tmp_path / "P0001.txt", dets, "P0001")
    ids, back = io.read_task1_txt(path, ["plane", "ship"])
    assert ids == ["P0001"] * 3 and back.labels.tolist() == [1, 0, 1]
    np.testing.assert_allclose(back.polygons().numpy(), dets.polygons().numpy(), atol=0.02)  # 2 decimals, refit
    with pytest.raises(ValueError, match="without spaces"):
        io.task1_lines(dets, "a b")
    (tmp_path / "bad.txt").write_text("P1 0.5 1 2 3 4 5 6 7 8 tank\n")
    with pytest.raises(ValueError, match="bad.txt:1: expected"):
        io.read_task1_txt(tmp_path / "bad.txt", ["plane", "ship"])


def test_geojson_pixel_space_is_marked_and_round_trips(tmp_path):
    dets = sample_dets()
    doc = io.to_geojson(dets, image_id="P0001")
    f0 = doc["features"][0]
    # ring counter-clockwise in its own axes (positive shoelace area: RFC 7946 right-hand rule), closed
    assert f0["geometry"]["coordinates"] == [[[6.0, 18.0], [14.0, 18.0], [14.0, 22.0], [6.0, 22.0], [6.0, 18.0]]]
    assert f0["properties"] == {"class": "ship", "label": 1, "score": 0.9} and "crs" not in doc
    assert doc["rdet"]["coordinate_space"] == "pixel"
    path, why = io.write_scene_geojson(tmp_path, "P0001", dets, None)
    assert path.name == "P0001.pixels.geojson" and why == ""
    back = io.read_geojson(path)
    iou = box_iou_rotated(back.boxes, dets.boxes, aligned=True)
    assert torch.all(iou > 0.999) and back.labels.tolist() == [1, 0, 1] and back.class_names == ["plane", "ship"]
    assert back.scores.tolist() == [0.9, 0.75, 0.5]


def test_json_round_trip_exact(tmp_path):
    dets = sample_dets()
    path = io.write_json(tmp_path / "d.json", dets, {"tiles": 3})
    back = io.read_json(path)
    assert torch.equal(back.boxes, dets.boxes) and torch.equal(back.scores, dets.scores)
    assert torch.equal(back.labels, dets.labels) and back.class_names == dets.class_names
    doc = json.loads(path.read_text())
    assert doc["info"] == {"tiles": 3} and doc["detections"][0]["class"] == "ship"


def test_draw_detections_and_png(tmp_path):
    img = np.zeros((60, 100, 3), np.uint8)
    dets = sample_dets()
    out = io.draw_detections(img, dets, scores=False)
    assert img.max() == 0  # the input is not modified
    # the top edge of box 0 runs along y = 18 from x = 6 to 14 in the colour of class 1
    assert tuple(out[18, 10]) == io.class_color(1) and tuple(out[20, 10]) == (0, 0, 0)
    only_plane = io.draw_detections(img, dets, scores=False, classes=["plane"])
    assert tuple(only_plane[18, 10]) == (0, 0, 0) and only_plane.max() > 0
    labelled = io.draw_detections(img, dets, scores=True)
    assert (labelled != out).any()  # score labels drawn
    path = io.write_png(tmp_path / "a.png", out)
    assert np.array_equal(cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB), out)
