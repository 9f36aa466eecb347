"""Label readers/writers on the real samples in data/samples, strict/lenient rules, fuzzing, convert CLI."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rdet.commands.convert import cli as convert_cli
from rdet.data import classes as C
from rdet.data import formats as F
from rdet.data import read_labels, write_dota, write_yolo_obb

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "samples"
DOTA8 = SAMPLES / "dota8"


def test_dota_with_header_p0706():
    a = read_labels(SAMPLES / "dota/labelTxt/P0706.txt")
    assert a.meta["format"] == "dota" and a.meta["imagesource"] == "GoogleEarth"
    assert a.meta["gsd"] == pytest.approx(0.255589285596)
    assert (a.width, a.height) == (1111, 1182)  # from the PNG header of the image beside the labels
    assert a.image_path.endswith("P0706.png")
    assert len(a) == 536 and Counter(a.names) == {"ship": 531, "harbor": 5}
    assert a.difficult.sum() == 6
    # first line: "1054 1028 1063 1011 1111 1040 1112 1062 ship 1"
    np.testing.assert_array_equal(a.polygons[0], [1054, 1028, 1063, 1011, 1111, 1040, 1112, 1062])
    assert a.names[0] == "ship" and a.difficult[0] and a.labels[0] == C.DOTA1_0.index("ship")
    assert a.class_names == list(C.DOTA2_0)


def test_dota_label_only_files_and_large_coordinates():
    counts = {}
    for f in sorted((SAMPLES / "dota/labelTxt_only").glob("*.txt")):
        a = read_labels(f)
        assert a.image_path is None and a.width is None
        counts[f.stem] = len(a)
    assert counts == {
        "P0000": 107,
        "P0001": 34,
        "P0002": 281,
        "P0007": 156,
        "P0770": 22,
        "P1088": 34,
        "P1234": 144,
        "P2598": 26,
        "P2709": 158,
    }
    p1234 = read_labels(SAMPLES / "dota/labelTxt_only/P1234.txt")
    assert p1234.meta["imagesource"] == "GF" and p1234.meta["gsd"] == 1.0
    assert p1234.polygons.max() == 4001.0
    boxes = p1234.boxes("le90")
    assert boxes.shape == (144, 5) and bool((boxes[:, 2] >= boxes[:, 3]).all())


def test_dota_without_header_keeps_difficulty_2():
    a = read_labels(SAMPLES / "dota_split_512/labelTxt/P0706__1__0___0.txt")
    assert "gsd" not in a.meta and len(a) == 81
    assert np.bincount(a.difficulty).tolist() == [71, 0, 10]
    assert a.difficult.sum() == 10
    empty = read_labels(SAMPLES / "dota_split_512/labelTxt/P1088__1__1024___768.txt")
    assert len(empty) == 0 and empty.polygons.shape == (0, 8) and empty.boxes().shape == (0, 5)


def test_dota_versions(tmp_path):
    f = tmp_path / "v15.txt"
    f.write_text("0 0 10 0 10 5 0 5 container-crane 0\n1 1 9 1 9 4 1 4 helipad\n")
    a = read_labels(f)  # default: the v2.0 list, which contains v1.0 and v1.5 with the same ids
    assert a.names == ["container-crane", "helipad"] and a.labels.tolist() == [15, 17]
    assert read_labels(f, classes="dota2.0").labels.tolist() == [15, 17]
    with pytest.raises(ValueError, match=r"v15.txt:2: unknown class .helipad."):
        read_labels(f, classes="dota1.5")
    with pytest.raises(ValueError, match=r"v15.txt:1: unknown class .container-crane."):
        read_labels(f, classes="dota1.0")
    assert C.DOTA1_5[:15] == C.DOTA1_0 and C.DOTA2_0[:16] == C.DOTA1_5 and len(C.DOTA2_0) == 18


@pytest.mark.parametrize(
    "line, reason",
    [
        ("1 2 3 4 5 6 7 ship", "expected 9 or 10 fields"),
        ("1 2 3 4 5 6 7 8 ship 0 extra", "expected 9 or 10 fields"),
        ("1 2 3 4 5 6 7 x ship 0", "coordinate 8 must be a decimal number, got 'x'"),
        ("1 2 3 4 5 6 7 nan ship 0", "coordinate 8 must be a decimal number, got 'nan'"),
        ("1 2 3 4 5 6 7 inf ship 0", "coordinate 8 must be a decimal number, got 'inf'"),
        ("1 2 3 4 5 6 7 1e300 ship 0", r"coordinate 8 must lie in \[-1e\+09, 1e\+09\], got 1e300"),
        ("١٠ 0 20 0 20 10 0 10 ship 0", "coordinate 1 must be a decimal number, got '١٠'"),
        ("１０ 0 20 0 20 10 0 10 ship 0", "coordinate 1 must be a decimal number, got '１０'"),
        ("1_0 0 20 0 20 10 0 10 ship 0", "coordinate 1 must be a decimal number, got '1_0'"),
        ("0 0 10 0 10 10 0 10 spaceship 0", "unknown class"),
        ("0 0 10 0 10 10 0 10 ship -1", r"difficult must lie in \[0, 255\], got -1"),
        ("0 0 10 0 10 10 0 10 ship 99999999999999999999", r"difficult must lie in \[0, 255\]"),
        ("0 0 10 0 10 10 0 10 ship ١", "difficult must be an integer, got '١'"),
        ("0 0 10 0 10 10 0 10 ship 1.0", "difficult must be an integer, got '1.0'"),
        ("0 0 10 0 10 10 0 10 ship yes", "difficult must be an integer, got 'yes'"),
        ("0 0 5 5 10 10 20 20 ship 0", "degenerate polygon"),
        ("3 3 3 3 3 3 3 3 ship 0", "degenerate polygon"),
    ],
)
def test_dota_strict_errors_name_file_and_line(tmp_path, line, reason):
    f = tmp_path / "bad.txt"
    f.write_text("imagesource:GoogleEarth\ngsd:0.5\n0 0 10 0 10 10 0 10 ship 0\n" + line + "\n")
    with pytest.raises(ValueError, match=rf"bad.txt:4: {reason}"):
        read_labels(f, format="dota")


def test_dota_bowtie_is_not_degenerate(tmp_path):
    # corners in crossing order: signed area 0, but the points span a 10x10 square
    f = tmp_path / "bowtie.txt"
    f.write_text("0 0 10 10 10 0 0 10 ship 0\n")
    box = read_labels(f).boxes("le90")[0]
    assert box[2].item() == pytest.approx(10) and box[3].item() == pytest.approx(10)


def test_lenient_reports_every_skipped_line(tmp_path):
    f = tmp_path / "mixed.txt"
    f.write_text("0 0 10 0 10 10 0 10 ship 0\nbroken line\n0 0 10 0 10 10 0 10 ufo 0\n2 2 8 2 8 8 2 8 plane 1\n")
    with pytest.warns(UserWarning, match="skipped 2 malformed") as rec:
        a = read_labels(f, strict=False)
    assert len(rec) == 1
    assert a.names == ["ship", "plane"] and a.difficult.tolist() == [False, True]
    assert [s.split(": ")[0] for s in a.meta["skipped"]] == [f"{f}:2", f"{f}:3"]
    # a folder: one warning for all files
    (tmp_path / "second.txt").write_text("bad\n")
    with pytest.warns(UserWarning, match="skipped 3 malformed"):
        out = F.read_label_dir(tmp_path, strict=False)
    assert [len(r) for r in out] == [2, 0]


def test_gsd_null_and_blank_lines(tmp_path):
    f = tmp_path / "n.txt"
    f.write_text("imagesource:GF\ngsd:null\n\n0 0 10 0 10 10 0 10 ship\n   \n")
    a = read_labels(f)
    assert a.meta["gsd"] is None and len(a) == 1 and a.difficulty.tolist() == [0]


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_fuzz_dota_text_only_value_error(text):
    try:
        a = F.parse_dota(text, "fuzz.txt")
    except ValueError as e:
        assert str(e).startswith("fuzz.txt:")
    else:
        assert a.polygons.shape[1] == 8 and np.isfinite(a.polygons).all()


_TOKENS = st.sampled_from(
    [
        "0",
        "1",
        "2",
        "-3.5",
        "1e3",
        "1e39",
        "nan",
        "inf",
        "10",
        "7",
        "ship",
        "plane",
        "small-vehicle",
        "gsd:0.3",
        "imagesource:GF",
        "x",
        "",
        "١٢",
        "²",
        "0x10",
        "1_0",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(_TOKENS, max_size=11).map(" ".join), max_size=6).map("\n".join), st.booleans())
def test_fuzz_dota_structured(text, strict):
    try:
        a = F.parse_dota(text, "fuzz.txt", strict=strict)
    except ValueError as e:
        assert strict and str(e).startswith("fuzz.txt:")
    else:
        assert len(a) + len(a.meta["skipped"]) <= text.count("\n") + 1
        assert np.isfinite(a.polygons).all()


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=200))
def test_fuzz_dota_bytes(tmp_path_factory, data):
    f = tmp_path_factory.mktemp("fz") / "b.txt"
    f.write_bytes(data)
    try:
        read_labels(f, format="dota")
    except ValueError as e:
        assert str(f) in str(e)


def test_yolo_obb_dota8():
    a = read_labels(DOTA8 / "labels/train/P1142__1024__0___824.txt", classes=DOTA8 / "dota8.yaml")
    assert a.meta["format"] == "yolo-obb" and (a.width, a.height) == (1024, 1024)
    assert a.image_path.endswith("images/train/P1142__1024__0___824.jpg")
    # "0 0.779296 0.690429 0.625976 0.451171 0.88965 0.266601 1.04199 0.51465" times 1024
    np.testing.assert_allclose(
        a.polygons[0],
        np.array([0.779296, 0.690429, 0.625976, 0.451171, 0.88965, 0.266601, 1.04199, 0.51465]) * 1024,
        rtol=1e-6,
    )
    assert a.names == ["plane"]
    b = read_labels(DOTA8 / "labels/train/P1053__1024__0___90.txt", classes=str(DOTA8 / "dota8.yaml"))
    assert Counter(b.names) == {"tennis court": 8, "small vehicle": 4, "swimming pool": 1}
    c = read_labels(
        DOTA8 / "labels/train/P0861__1024__0___1648.txt",
        classes=C.read_class_names(DOTA8 / "dota8.yaml"),
        image_size=(2048, 512),
    )
    assert (c.width, c.height) == (2048, 512) and c.polygons[:, 0::2].max() > 1024


def test_yolo_obb_needs_names_and_size(tmp_path):
    # DOTA8's class names are found in dota8.yaml at the dataset root, two folders above the labels
    a = read_labels(DOTA8 / "labels/train/P1142__1024__0___824.txt")
    assert a.names == ["plane"] and a.meta["classes_file"].endswith("dota8.yaml")
    lone = tmp_path / "lone" / "a.txt"
    lone.parent.mkdir()
    lone.write_text("0 0.1 0.1 0.2 0.1 0.2 0.2 0.1 0.2\n")
    with pytest.raises(ValueError, match="need class names and none of classes.yaml"):
        read_labels(lone, image_size=(10, 10))
    f = tmp_path / "x.txt"
    f.write_text("0 0.1 0.1 0.2 0.1 0.2 0.2 0.1 0.2\n")
    with pytest.raises(ValueError, match="pass image_size"):
        read_labels(f, classes=["a"])
    with pytest.raises(ValueError, match=r"x.txt:1: class id must lie in \[0, 0\], got 3"):
        f.write_text("3 0.1 0.1 0.2 0.1 0.2 0.2 0.1 0.2\n")
        read_labels(f, format="yolo-obb", classes=["a"], image_size=(100, 100))


def test_class_name_files(tmp_path):
    assert C.read_class_names(DOTA8 / "dota8.yaml")[:3] == ["plane", "ship", "storage tank"]
    assert len(C.read_class_names(DOTA8 / "dota8.yaml")) == 15
    (tmp_path / "a.yaml").write_text("path: x\nnames: ['car', \"boat\"]\nnc: 2\n")
    assert C.read_class_names(tmp_path / "a.yaml") == ["car", "boat"]
    (tmp_path / "b.yaml").write_text("names:\n  - car\n  - boat  # comment\ntrain: x\n")
    assert C.read_class_names(tmp_path / "b.yaml") == ["car", "boat"]
    (tmp_path / "c.txt").write_text("car\n\nboat\n")
    assert C.read_class_names(tmp_path / "c.txt") == ["car", "boat"]
    (tmp_path / "d.yaml").write_text("names:\n  0: car\n  2: boat\n")
    with pytest.raises(ValueError, match="must be 0..N-1"):
        C.read_class_names(tmp_path / "d.yaml")
    C.write_class_names(tmp_path / "e.yaml", ["storage tank", "ship"])
    assert C.read_class_names(tmp_path / "e.yaml") == ["storage tank", "ship"]
    with pytest.raises(ValueError, match="unknown class list"):
        C.get_classes("coco")


def test_dior_r():
    a = read_labels(SAMPLES / "dior_r/Annotations/00001.xml")
    assert a.meta["format"] == "dior-r" and (a.width, a.height) == (800, 800)
    assert a.image_path.endswith("JPEGImages/00001.jpg")
    np.testing.assert_array_equal(a.polygons, [[133, 237, 684, 237, 684, 672, 133, 672]])
    assert a.names == ["golffield"] and a.class_names == list(C.DIOR_R)
    np.testing.assert_allclose(a.boxes("le90").numpy(), [[408.5, 454.5, 551, 435, 0]])


def test_dior_r_errors(tmp_path):
    f = tmp_path / "d.xml"
    f.write_text(
        "<annotation><object><name>Airplane</name><robndbox><x_left_top>1</x_left_top></robndbox></object></annotation>"
    )
    with pytest.raises(ValueError, match=r"d.xml:object 1: missing <y_left_top>"):
        read_labels(f)
    f.write_text("<annotation><object><name>tank</name></object>")
    with pytest.raises(ValueError, match=r"d.xml:1: malformed XML"):
        read_labels(f)


def test_hrsc_angle_convention():
    a = read_labels(SAMPLES / "hrsc/Annotations/100000006.xml")
    assert a.meta["format"] == "hrsc" and (a.width, a.height) == (1172, 816) and a.names == ["ship"]
    # mbox_cx, mbox_cy, mbox_w, mbox_h, mbox_ang = 341.2143 443.3325 778.4297 178.2595 -1.122944 is our box
    np.testing.assert_allclose(
        a.boxes("le90")[0].numpy(), [341.2143, 443.3325, 778.4297, 178.2595, -1.122944], rtol=1e-6, atol=1e-5
    )
    # The bow point (header_x, header_y) = (143, 776) lies on the box's long axis only with our sign.
    cx, cy, w, h, t = 341.2143, 443.3325, 778.4297, 178.2595, -1.122944
    dx, dy = 143 - cx, 776 - cy
    along = dx * math.cos(t) + dy * math.sin(t)
    across = -dx * math.sin(t) + dy * math.cos(t)
    assert abs(across) < h / 2 and abs(along) <= w / 2 + 1
    across_flipped = -dx * math.sin(-t) + dy * math.cos(-t)
    assert abs(across_flipped) > w / 4
    np.testing.assert_array_equal(a.meta["headers"], [[143, 776]])
    fine = read_labels(SAMPLES / "hrsc/Annotations/100000006.xml", classes="hrsc-classwise")
    assert fine.labels.tolist() == [12] and fine.names == ["Kuznetsov"]  # Class_ID 100000013 -> code '13'


def test_detect_format():
    assert F.detect_format(SAMPLES / "dota/labelTxt/P0706.txt") == "dota"
    assert F.detect_format(DOTA8 / "labels/train/P1142__1024__0___824.txt") == "yolo-obb"
    assert F.detect_format(SAMPLES / "dior_r/Annotations/00001.xml") == "dior-r"
    assert F.detect_format(SAMPLES / "hrsc/Annotations/100000006.xml") == "hrsc"
    assert F.detect_format(SAMPLES / "dota_split_512/labelTxt/P1088__1__1024___768.txt") == "dota"


def test_read_image_size(tmp_path):
    assert F.read_image_size(SAMPLES / "dota/images/P1888.png") == (712, 557)
    assert F.read_image_size(SAMPLES / "dior_r/JPEGImages/00001.jpg") == (800, 800)
    img = np.zeros((7, 9, 3), np.uint8)
    for ext in (".bmp", ".tif"):
        cv2.imwrite(str(tmp_path / f"a{ext}"), img)
        assert F.read_image_size(tmp_path / f"a{ext}") == (9, 7)
    with pytest.raises(FileNotFoundError, match="nope.png"):
        F.read_image_size(tmp_path / "nope.png")
    (tmp_path / "junk.tif").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="junk.tif"):
        F.read_image_size(tmp_path / "junk.tif")


def test_dota_round_trip(tmp_path):
    a = read_labels(SAMPLES / "dota/labelTxt/P0706.txt")
    write_dota(tmp_path / "P0706.txt", a)
    text = (tmp_path / "P0706.txt").read_text().splitlines()
    assert text[:3] == [
        "imagesource:GoogleEarth",
        "gsd:0.255589285596",
        "1054 1028 1063 1011 1111 1040 1112 1062 ship 1",
    ]
    b = read_labels(tmp_path / "P0706.txt", image_size=(1111, 1182))
    np.testing.assert_array_equal(a.polygons, b.polygons)
    assert a.names == b.names and (a.difficulty == b.difficulty).all() and a.meta["gsd"] == b.meta["gsd"]
    # fractional coordinates and difficulty 2 survive exactly too
    c = read_labels(SAMPLES / "dota_split_512/labelTxt/P0706__1__0___256.txt")
    c.polygons = c.polygons + np.float32(0.1)
    write_dota(tmp_path / "c.txt", c, header=False)
    d = read_labels(tmp_path / "c.txt")
    np.testing.assert_array_equal(c.polygons, d.polygons)
    assert (c.difficulty == d.difficulty).all()


def test_yolo_round_trip(tmp_path):
    for f in sorted((DOTA8 / "labels/train").glob("*.txt")):
        a = read_labels(f, classes=DOTA8 / "dota8.yaml")
        write_yolo_obb(tmp_path / f.name, a, clip=False)  # as read: DOTA8 has objects cut by the border
        b = read_labels(tmp_path / f.name, classes=DOTA8 / "dota8.yaml", image_size=(a.width, a.height))
        np.testing.assert_array_equal(a.polygons, b.polygons)
        assert (a.labels == b.labels).all()
        write_yolo_obb(tmp_path / f.name, a, precision=6, clip=False)  # Ultralytics' precision: the file's own digits
        assert (tmp_path / f.name).read_text().split("\n")[0].split()[0] == f.read_text().split()[0]
    # DOTA -> YOLO -> DOTA on a real image with its size
    p = read_labels(SAMPLES / "dota/labelTxt/P1888.txt")
    write_yolo_obb(tmp_path / "P1888.txt", p)
    q = read_labels(tmp_path / "P1888.txt", classes=p.class_names, image_size=(p.width, p.height))
    np.testing.assert_array_equal(p.polygons, q.polygons)


def test_remap_and_whitespace_names(tmp_path):
    a = read_labels(DOTA8 / "labels/train/P1053__1024__0___90.txt", classes=DOTA8 / "dota8.yaml")
    with pytest.raises(ValueError, match="cannot contain whitespace"):
        write_dota(tmp_path / "x.txt", a)
    b = F.remap_classes(a, "dota1.0")
    assert Counter(b.names) == {"tennis-court": 8, "small-vehicle": 4, "swimming-pool": 1}
    write_dota(tmp_path / "x.txt", b)
    assert Counter(read_labels(tmp_path / "x.txt").names) == Counter(b.names)
    with pytest.raises(ValueError, match=r"classes \['swimming pool'\] are not in the target list"):
        F.remap_classes(a, ["tennis-court", "small-vehicle"])


def test_convert_cli(tmp_path, capsys):
    out = tmp_path / "dota"
    rc = convert_cli(
        [
            str(DOTA8 / "labels/train"),
            "--output",
            str(out),
            "--to",
            "dota",
            "--classes",
            str(DOTA8 / "dota8.yaml"),
            "--output-classes",
            "dota1.0",
        ]
    )
    assert rc == 0 and "converted 4 file(s) to dota" in capsys.readouterr().out
    a = read_labels(out / "P1053__1024__0___90.txt", image_size=(1024, 1024))
    assert Counter(a.names) == {"tennis-court": 8, "small-vehicle": 4, "swimming-pool": 1}
    back = tmp_path / "yolo"
    assert (
        convert_cli([str(out), "--output", str(back), "--to", "yolo-obb", "--images", str(DOTA8 / "images/train")]) == 0
    )
    names = C.read_class_names(back / "classes.yaml")
    assert names == list(C.DOTA2_0)
    orig = read_labels(DOTA8 / "labels/train/P1053__1024__0___90.txt", classes=DOTA8 / "dota8.yaml")
    again = read_labels(back / "P1053__1024__0___90.txt", classes=names, image_size=(1024, 1024))
    np.testing.assert_allclose(again.polygons, orig.polygons, atol=1e-3)
    assert convert_cli([str(tmp_path / "empty_dir_missing"), "--output", str(back), "--to", "dota"]) == 2
