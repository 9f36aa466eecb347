"""Every bad-input example of issue 18.2 and the convert items of 19.1: an error naming file and line (or XML
object), in strict mode; skipped and listed in lenient mode; never an OverflowError, struct.error or silent value."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from rdet.commands.convert import cli as convert_cli
from rdet.data import classes as C
from rdet.data import formats as F
from rdet.data import read_labels
from rdet.data.convert import convert_labels

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "samples"
DOTA8 = SAMPLES / "dota8"
GOOD = "0 0 10 0 10 10 0 10 ship 0"


def dior(obj: str = "", size: str = "<size><width>800</width><height>800</height></size>") -> str:
    box = "".join(
        f"<{t}>{v}</{t}>"
        for t, v in zip(
            (
                "x_left_top",
                "y_left_top",
                "x_right_top",
                "y_right_top",
                "x_right_bottom",
                "y_right_bottom",
                "x_left_bottom",
                "y_left_bottom",
            ),
            (1, 1, 50, 1, 50, 40, 1, 40),
        )
    )
    good = f"<object><name>ship</name><robndbox>{box}</robndbox></object>"
    return f"<annotation><filename>x.jpg</filename>{size}{good}{obj}</annotation>"


def hrsc(extra: str) -> str:
    obj = "<mbox_cx>50</mbox_cx><mbox_cy>50</mbox_cy><mbox_w>30</mbox_w><mbox_h>10</mbox_h><mbox_ang>0.1</mbox_ang>"
    return (
        "<HRSC_Image><Img_SizeWidth>100</Img_SizeWidth><Img_SizeHeight>100</Img_SizeHeight><HRSC_Objects>"
        f"<HRSC_Object>{obj}</HRSC_Object><HRSC_Object>{obj}{extra}</HRSC_Object></HRSC_Objects></HRSC_Image>"
    )


@pytest.mark.parametrize(
    "xml, reason",
    [
        (dior("<object><name>ship</name><difficult>inf</difficult></object>"), "object 2: missing <robndbox>"),
        (
            dior(
                obj=dior()[dior().index("<object>") : dior().index("</object>") + 9]
                .replace("<difficult>", "")
                .replace("</robndbox>", "</robndbox><difficult>inf</difficult>")
            ),
            "object 2: <difficult> must be an integer, got 'inf'",
        ),
        (
            dior(obj=dior()[dior().index("<object>") : dior().index("</object>") + 9].replace(">50<", ">1e300<", 1)),
            r"object 2: <x_right_top> must lie in \[-1e\+09, 1e\+09\], got 1e300",
        ),
        (
            dior(
                obj=dior()[dior().index("<object>") : dior().index("</object>") + 9].replace(
                    "</robndbox>", "</robndbox><difficult>99999999999999999999</difficult>"
                )
            ),
            r"object 2: <difficult> must lie in \[0, 255\]",
        ),
        (
            dior(
                obj=dior()[dior().index("<object>") : dior().index("</object>") + 9].replace(
                    "</robndbox>", "</robndbox><difficult>-1</difficult>"
                )
            ),
            r"object 2: <difficult> must lie in \[0, 255\], got -1",
        ),
        (
            dior(size="<size><width>inf</width><height>800</height></size>"),
            "size: <width> must be an integer, got 'inf'",
        ),
        (dior(size="<size><width>-800</width><height>800</height></size>"), r"size: <width> must lie in \[1, "),
        (dior(size="<size><width>0</width><height>800</height></size>"), r"size: <width> must lie in \[1, "),
    ],
)
def test_dior_r_bad_values(tmp_path, xml, reason):
    f = tmp_path / "d.xml"
    f.write_text(xml)
    with pytest.raises(ValueError, match=rf"d.xml:{reason}"):
        read_labels(f)
    with pytest.warns(UserWarning, match="skipped 1 malformed"):
        a = read_labels(f, strict=False)  # lenient: the good object survives, the bad entry is listed
    assert len(a) >= 1 and len(a.meta["skipped"]) == 1 and "d.xml:" in a.meta["skipped"][0]
    if "size" in reason:
        assert a.width is None  # the bad size is never used


@pytest.mark.parametrize(
    "extra, reason",
    [
        ("<header_x>inf</header_x>", "object 2: <header_x> must be a decimal number, got 'inf'"),
        ("<header_y>1e300</header_y>", r"object 2: <header_y> must lie in"),
        ("<difficult>99999999999999999999</difficult>", r"object 2: <difficult> must lie in \[0, 255\]"),
    ],
)
def test_hrsc_bad_values(tmp_path, extra, reason):
    f = tmp_path / "h.xml"
    f.write_text(hrsc(extra))
    with pytest.raises(ValueError, match=rf"h.xml:{reason}"):
        read_labels(f)
    with pytest.warns(UserWarning):
        assert len(read_labels(f, strict=False)) == 1


@pytest.mark.parametrize("sep", ["\x0c", "\x85", "\u2028", "\u2029", "\x1c", "\x0b"])
def test_line_numbers_count_newlines_only(tmp_path, sep):
    f = tmp_path / "l.txt"
    # str.splitlines() splits on all of these, so "broken" was reported on line 5 instead of 4
    f.write_text(f"{GOOD}\n0 0 10{sep}0 10 10 0 10 ship 0\n{GOOD}\nbroken\n", encoding="utf-8", newline="")
    blank = sep in "\x0b\x0c"  # ASCII blanks separate fields like a space; the others are not numbers
    with pytest.raises(ValueError, match=r"l.txt:4: " if blank else r"l.txt:2: coordinate 3 must be a decimal"):
        read_labels(f, format="dota")
    with pytest.warns(UserWarning):
        a = read_labels(f, format="dota", strict=False)
    assert [m.split(": ")[0] for m in a.meta["skipped"]] == ([] if blank else [f"{f}:2"]) + [f"{f}:4"]


def test_crlf_lines(tmp_path):
    f = tmp_path / "w.txt"
    f.write_bytes(f"imagesource:GF\r\ngsd:0.5\r\n{GOOD}\r\nbad\r\n".encode())
    with pytest.raises(ValueError, match=r"w.txt:4: expected 9 or 10 fields"):
        read_labels(f)


@pytest.mark.parametrize(
    "line, reason",
    [
        ("0 512 100 600 100 600 200 512 200", r"coordinate 1 must lie in \[-0.25, 1.25\], got 512: YOLO-OBB"),
        ("0 1.3 0.1 1.4 0.1 1.4 0.2 1.3 0.2", r"coordinate 1 must lie in \[-0.25, 1.25\]"),
        ("0 1.1 0.1 1.2 0.1 1.2 0.2 1.1 0.2", "the object lies wholly outside the image"),
        ("0 inf 0.1 0.2 0.1 0.2 0.2 0.1 0.2", "coordinate 1 must be a decimal number, got 'inf'"),
        ("١ 0.1 0.1 0.2 0.1 0.2 0.2 0.1 0.2", "class id must be an integer"),
        ("-1 0.1 0.1 0.2 0.1 0.2 0.2 0.1 0.2", r"class id must lie in \[0, 1\], got -1"),
    ],
)
def test_yolo_obb_values(tmp_path, line, reason):
    f = tmp_path / "y.txt"
    f.write_text(f"1 0.1 0.1 0.2 0.1 0.2 0.2 0.1 0.2\n{line}\n")
    with pytest.raises(ValueError, match=rf"y.txt:2: {reason}"):
        read_labels(f, format="yolo-obb", classes=["a", "b"], image_size=(100, 100))
    with pytest.warns(UserWarning):
        assert len(read_labels(f, format="yolo-obb", classes=["a", "b"], image_size=(100, 100), strict=False)) == 1
    # objects cut by the border (DOTA8 reaches -0.07 and 1.04) are fine
    f.write_text("0 -0.07 0.1 1.04 0.1 1.04 0.2 -0.07 0.2\n")
    assert len(read_labels(f, format="yolo-obb", classes=["a"], image_size=(100, 100))) == 1


def test_truncated_image_beside_yolo_labels(tmp_path):
    (tmp_path / "labels").mkdir()
    (tmp_path / "images").mkdir()
    ok, buf = cv2.imencode(".jpg", np.zeros((40, 50, 3), np.uint8))
    (tmp_path / "images/a.jpg").write_bytes(buf.tobytes()[:15])  # cut before the frame header
    (tmp_path / "labels/a.txt").write_text("0 0.1 0.1 0.2 0.1 0.2 0.2 0.1 0.2\n")
    (tmp_path / "labels/b.txt").write_text("0 0.1 0.1 0.2 0.1 0.2 0.2 0.1 0.2\n")
    (tmp_path / "images/b.jpg").write_bytes(buf.tobytes())
    with pytest.raises(
        ValueError, match=r"a.txt: cannot read the size of its image: .*a.jpg: cannot decode the image: truncated JPEG"
    ):
        read_labels(tmp_path / "labels/a.txt", classes=["x"])
    skipped: list[str] = []
    with pytest.warns(UserWarning, match="file skipped"):
        out = F.read_label_dir(tmp_path / "labels", classes=["x"], strict=False, skipped=skipped)
    assert [Path(r.label_path).name for r in out] == ["b.txt"] and "a.jpg" in skipped[0]


def test_dota_gsd_values(tmp_path):
    f = tmp_path / "g.txt"
    f.write_text(f"gsd:inf\n{GOOD}\n")
    with pytest.raises(ValueError, match=r"g.txt:1: gsd must be a decimal number, got 'inf'"):
        read_labels(f)
    f.write_text(f"gsd:-1\n{GOOD}\n")
    with pytest.raises(ValueError, match=r"g.txt:1: gsd must lie in"):
        read_labels(f)


def test_yaml_class_files(tmp_path):
    (tmp_path / "q.yaml").write_text("names:\n  0: 'yes'\n  1: \"OXo|--)\"\n  2: plane # comment\n")
    assert C.read_class_names(tmp_path / "q.yaml") == ["yes", "OXo|--)", "plane"]
    (tmp_path / "b.yaml").write_text("names:\n  - yes\n")
    with pytest.raises(ValueError, match=r"b.yaml: class name 0 is True, not a non-empty string"):
        C.read_class_names(tmp_path / "b.yaml")
    (tmp_path / "c.yaml").write_text("names: [a, b\n")
    with pytest.raises(ValueError, match=r"c.yaml:2: invalid YAML"):
        C.read_class_names(tmp_path / "c.yaml")
    (tmp_path / "d.yaml").write_text("names: [a, a]\n")
    with pytest.raises(ValueError, match="appears twice"):
        C.read_class_names(tmp_path / "d.yaml")
    names = list(C.HRSC_CLASSWISE)
    C.write_class_names(tmp_path / "e.yaml", names)  # names YAML would misread are quoted
    assert C.read_class_names(tmp_path / "e.yaml") == names


# ------------------------------------------------------------------------------------------------ convert
def test_convert_refuses_to_overwrite(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text(GOOD + "\n")
    (src / "a.xml").write_text(dior())
    with pytest.raises(ValueError, match=r"a.txt and .*a.xml would both be written to .*a.txt"):
        convert_labels(src, tmp_path / "out", "dota", classes="dota2.0")
    assert not (tmp_path / "out").exists()
    (src / "a.xml").unlink()
    convert_labels(src, tmp_path / "out", "dota")
    with pytest.raises(ValueError, match="a.txt already exists"):
        convert_labels(src, tmp_path / "out", "dota")
    with pytest.raises(ValueError, match="already exists"):
        convert_labels(src, src, "dota")  # in place
    assert convert_labels(src, tmp_path / "out", "dota", overwrite=True).written == [tmp_path / "out/a.txt"]


def test_convert_cli_overwrite_is_one_line(tmp_path, capsys):
    (tmp_path / "a.txt").write_text(GOOD + "\n")
    assert convert_cli([str(tmp_path / "a.txt"), "--output", str(tmp_path / "o"), "--to", "dota"]) == 0
    assert convert_cli([str(tmp_path / "a.txt"), "--output", str(tmp_path / "o"), "--to", "dota"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rdet convert: error:") and "already exists" in err[0]
    assert "--overwrite" in err[0] and "overwrite=True" not in err[0]  # names the flag, not the keyword


def test_convert_yolo_to_dota_finds_classes_and_dota_keeps_headers(tmp_path):
    rep = convert_labels(DOTA8 / "labels/train", tmp_path / "dota", "dota", classes="dota1.0")  # no names given
    assert rep.files == 4 and not rep.notes
    assert "tennis-court" in (tmp_path / "dota/P1053__1024__0___90.txt").read_text()
    convert_labels(SAMPLES / "dota/labelTxt/P0706.txt", tmp_path / "d2d", "dota")
    text = (tmp_path / "d2d/P0706.txt").read_text().splitlines()
    assert text[:2] == ["imagesource:GoogleEarth", "gsd:0.255589285596"]
    assert text[2] == "1054 1028 1063 1011 1111 1040 1112 1062 ship 1"  # difficult kept


def test_convert_to_yolo_clips_and_reports_difficult(tmp_path):
    rep = convert_labels(SAMPLES / "dota/labelTxt/P0706.txt", tmp_path / "y", "yolo-obb")
    assert any("6 object(s) marked difficult: YOLO-OBB has no difficult field" in n for n in rep.notes)
    values = np.array([ln.split()[1:] for ln in (tmp_path / "y/P0706.txt").read_text().splitlines()], float)
    assert values.min() >= 0 and values.max() <= 1
    assert any("coordinates clipped to [0, 1]" in n for n in rep.notes) == bool(
        (read_labels(SAMPLES / "dota/labelTxt/P0706.txt").polygons[:, 0::2] > 1111).any()
        or (read_labels(SAMPLES / "dota/labelTxt/P0706.txt").polygons < 0).any()
        or (read_labels(SAMPLES / "dota/labelTxt/P0706.txt").polygons[:, 1::2] > 1182).any()
    )
    assert C.read_class_names(tmp_path / "y/classes.yaml") == list(C.DOTA2_0)
