"""Known answers for the DOTA Task1 metric (rdet.eval), written out by hand.

Most scenes use axis-aligned squares so every IoU is obvious: ``sq(x0, y0, x1, y1)``.
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from rdet.commands.eval import cli
from rdet.engine.evaluate import run_model
from rdet.eval import (
    COCO_IOU_THRS,
    evaluate,
    evaluate_task1,
    load_detections_json,
    load_task1,
    rotated_ld_printed_ap,
    save_detections_json,
    voc_ap,
)

ROOT = Path(__file__).resolve().parents[1]


def sq(x0, y0, x1, y1):
    return [x0, y0, x1, y0, x1, y1, x0, y1]


A, B, C = sq(0, 0, 10, 10), sq(20, 0, 30, 10), sq(40, 0, 50, 10)  # three disjoint objects
FAR = sq(100, 100, 110, 110)  # overlaps nothing


def gt(polys, labels, difficult=None):
    return {"polygons": polys, "labels": labels, "difficult": difficult or [False] * len(polys)}


def det(polys, scores, labels):
    return {"polygons": polys, "scores": scores, "labels": labels}


# ------------------------------------------------------------------------------------ voc_ap by hand
def test_voc07_eleven_points_by_hand():
    rec, prec = [0.2, 0.4, 0.5, 0.8], [1.0, 0.8, 0.6, 0.5]
    # r = 0, .1, .2 -> 1.0 ; .3, .4 -> 0.8 ; .5 -> 0.6 ; .6, .7, .8 -> 0.5 ; .9, 1 -> 0
    assert voc_ap(rec, prec, True) == pytest.approx((3 * 1.0 + 2 * 0.8 + 0.6 + 3 * 0.5) / 11)
    # area: .2 * 1 + .2 * .8 + .1 * .6 + .3 * .5
    assert voc_ap(rec, prec, False) == pytest.approx(0.2 + 0.16 + 0.06 + 0.15)


def test_voc07_devkit_recall_levels_float_quirk():
    # The devkit's levels np.arange(0, 1.1, 0.1) hold 0.30000000000000004 and 0.6000000000000001, so a
    # recall of exactly 0.3 (3 of 10) or 0.6 does not reach them: levels .3 and .6 take later points.
    rec, prec = [0.2, 0.3, 0.5, 0.6], [1.0, 0.8, 0.6, 0.5]
    assert voc_ap(rec, prec, True) == pytest.approx((3 * 1.0 + 3 * 0.6) / 11)  # not (3 + .8 + 2*.6 + .5)/11
    assert voc_ap([0.3], [1.0], True) == pytest.approx(3 / 11)  # levels 0, .1, .2 only


def test_voc_ap_empty_and_bad_input():
    assert voc_ap([], [], True) == 0.0 and voc_ap([], [], False) == 0.0
    with pytest.raises(ValueError, match="non-decreasing"):
        voc_ap([0.5, 0.2], [1.0, 1.0])
    with pytest.raises(ValueError, match="finite"):
        voc_ap([0.5, float("nan")], [1.0, 1.0])


# ---------------------------------------------------------------------------------- matching rules
@pytest.mark.parametrize("use07", [True, False])
def test_perfect_detections_ap_one_every_class_and_threshold(use07):
    anns = {"a": gt([A, B], [0, 1]), "b": gt([C], [2])}
    dets = {"a": det([B, A], [0.9, 0.8], [1, 0]), "b": det([C], [0.7], [2])}
    r = evaluate(dets, anns, "coco", use_07_metric=use07, class_names=["x", "y", "z"])
    assert r.ap.shape == (3, 10)
    np.testing.assert_allclose(r.ap, 1.0, atol=1e-12)
    assert r.mean_map == pytest.approx(1.0)
    assert list(r.num_gt) == [1, 1, 1] and list(r.num_dets) == [1, 1, 1]


def test_false_positive_ranked_above_true_positive():
    anns = {"a": gt([A], [0])}
    r = evaluate({"a": det([FAR, A], [0.9, 0.8], [0, 0])}, anns)
    # recall [0, 1], precision [0, 1/2] -> every 11-point level gets 1/2; area 1 * 1/2
    np.testing.assert_allclose(r.recall[0][0], [0.0, 1.0])
    np.testing.assert_allclose(r.precision[0][0], [0.0, 0.5])
    assert r.ap[0, 0] == pytest.approx(0.5)
    assert evaluate({"a": det([FAR, A], [0.9, 0.8], [0, 0])}, anns, use_07_metric=False).ap[0, 0] == pytest.approx(0.5)


def test_detection_on_difficult_object_is_ignored():
    anns = {"a": gt([A, B], [0, 0], [True, False])}
    r = evaluate({"a": det([A, B], [0.9, 0.8], [0, 0])}, anns)
    assert r.num_gt[0] == 1 and r.num_difficult[0] == 1 and r.num_dets[0] == 2
    np.testing.assert_allclose(r.recall[0][0], [1.0])  # the difficult hit is neither TP nor FP
    np.testing.assert_allclose(r.precision[0][0], [1.0])
    assert r.ap[0, 0] == pytest.approx(1.0)


def test_two_detections_on_one_object_one_tp_one_fp():
    anns = {"a": gt([A, B], [0, 0])}
    r = evaluate({"a": det([A, A, B], [0.9, 0.8, 0.7], [0, 0, 0])}, anns)
    # TP, FP (duplicate), TP -> recall [.5, .5, 1], precision [1, .5, 2/3]
    np.testing.assert_allclose(r.recall[0][0], [0.5, 0.5, 1.0])
    np.testing.assert_allclose(r.precision[0][0], [1.0, 0.5, 2 / 3])
    assert r.ap[0, 0] == pytest.approx((6 * 1.0 + 5 * 2 / 3) / 11)  # levels 0..0.5 -> 1, 0.6..1 -> 2/3
    r = evaluate({"a": det([A, A, B], [0.9, 0.8, 0.7], [0, 0, 0])}, anns, use_07_metric=False)
    assert r.ap[0, 0] == pytest.approx(0.5 * 1.0 + 0.5 * 2 / 3)


def test_best_object_taken_means_false_positive_not_second_best():
    # Devkit rule: a detection goes to its max-IoU object even when that one is already matched.
    anns = {"a": gt([sq(0, 0, 10, 10), sq(2, 0, 12, 10)], [0, 0])}
    d = sq(1, 0, 11, 10)  # IoU 9/11 with both; ties -> the first object
    r = evaluate({"a": det([sq(0, 0, 10, 10), d], [0.9, 0.8], [0, 0])}, anns)
    np.testing.assert_allclose(r.recall[0][0], [0.5, 0.5])  # second detection: FP, object 2 stays missed


def test_class_without_ground_truth_is_nan_and_left_out_of_map():
    anns = {"a": gt([A], [0])}
    r = evaluate({"a": det([A, B], [0.9, 0.8], [0, 1])}, anns, class_names=["x", "y"])
    assert r.ap[0, 0] == pytest.approx(1.0) and math.isnan(r.ap[1, 0])
    assert r.num_gt[1] == 0 and r.num_dets[1] == 1
    assert r.map[0] == pytest.approx(1.0)  # mean over classes with objects only
    assert json.loads(r.to_json())["classes"]["y"]["ap"]["0.5"] is None
    assert "| y | 0 | 1 | - |" in r.table()


def test_class_without_detections_has_ap_zero():  # the devkit crashes here
    anns = {"a": gt([A, B], [0, 1])}
    r = evaluate({"a": det([A], [0.9], [0])}, anns, class_names=["x", "y"])
    assert r.ap[1, 0] == 0.0 and r.map[0] == pytest.approx(0.5)


def test_image_without_detections():
    anns = {"a": gt([A], [0]), "b": gt([B], [0])}
    r = evaluate({"a": det([A], [0.9], [0])}, anns)  # image b: no detections at all
    np.testing.assert_allclose(r.recall[0][0], [0.5])
    assert r.ap[0, 0] == pytest.approx(6 / 11)  # levels 0..0.5
    r = evaluate({"a": det([A], [0.9], [0]), "b": det(np.zeros((0, 8)), [], [])}, anns, use_07_metric=False)
    assert r.ap[0, 0] == pytest.approx(0.5)


def test_threshold_is_strictly_greater_and_coco_mean():
    anns = {"a": gt([sq(0, 0, 2, 1)], [0])}
    half = {"a": det([sq(0, 0, 1, 1)], [0.9], [0])}  # IoU exactly 1/2
    r = evaluate(half, anns, (0.49, 0.5))
    assert list(r.ap[0]) == [pytest.approx(1.0), 0.0]
    anns = {"a": gt([sq(0, 0, 10, 10)], [0])}
    r = evaluate({"a": det([sq(0, 0, 10, 7.2)], [0.9], [0])}, anns, "coco")  # IoU 0.72
    assert r.iou_thrs == COCO_IOU_THRS
    np.testing.assert_allclose(r.ap[0], [1, 1, 1, 1, 1, 0, 0, 0, 0, 0], atol=1e-12)
    assert r.mean_map == pytest.approx(0.5) and r.map_at(0.7) == pytest.approx(1.0)
    assert "AP50:95" in r.table() and "AP75" in r.table()


def test_rotated_boxes_input_and_list_inputs():
    anns = [{"image_path": "/x/P0001.png", "polygons": [A], "labels": [0], "difficult": [False]}]
    boxes = torch.tensor([[5.0, 5.0, 10.0, 10.0, 0.0], [5.0, 5.0, 10.0, 10.0, math.pi / 2]])  # both == A
    dets = [{"boxes": boxes, "scores": torch.tensor([0.9, 0.8]), "labels": torch.tensor([0, 0])}]
    r = evaluate(dets, anns)  # a list without image ids aligns with the annotations
    np.testing.assert_allclose(r.precision[0][0], [1.0, 0.5])
    r = evaluate([{"image_id": "P0001", **dets[0]}], anns)
    np.testing.assert_allclose(r.recall[0][0], [1.0, 1.0])


def test_annotations_records_from_rdet_data():
    from rdet.data import Annotations

    names = ["plane", "ship", "harbor"]  # harbor: no objects -> NaN, not in mAP
    anns = [Annotations("/d/images/P7.png", 64, 64, [A, B], [0, 1], names, [False, False])]
    r = evaluate({"P7": det([A, B], [0.9, 0.8], [0, 0])}, anns)  # class names come from the records
    assert r.class_names == names and r.ap[0, 0] == pytest.approx(1.0) and r.ap[1, 0] == 0.0
    assert math.isnan(r.ap[2, 0]) and r.map[0] == pytest.approx(0.5)


def test_rotated_ld_printed_ap_running_sum():
    anns = {"a": gt([sq(0, 0, 10, 10)], [0])}
    r = evaluate({"a": det([sq(0, 0, 10, 7.2)], [0.9], [0])}, anns, "coco")  # mAP_t: 1 x5, then 0 x5
    # one class: m_t = m_{t-1} / 1 + mAP_t -> 1, 2, 3, 4, 5, 5, 5, 5, 5, 5 -> mean 4.0 (true mean 0.5)
    assert rotated_ld_printed_ap(r) == pytest.approx(4.0)
    anns = {"a": gt([A, B], [0, 1])}
    r = evaluate({"a": det([A], [0.9], [0])}, anns, "coco")  # class 0: AP 1, class 1: AP 0 -> mAP_t = 1/2
    # two classes: m_t = m_{t-1} / 2 + 1/2 = 1 - 2^-t -> mean = 1 - (1 - 2^-10) / 10
    assert r.mean_map == pytest.approx(0.5)
    assert rotated_ld_printed_ap(r) == pytest.approx(1 - (1 - 2**-10) / 10)


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"a": det([A], [float("nan")], [0])}, "NaN"),
        ({"zz": det([A], [0.9], [0])}, "unknown image id"),
        ({"a": det([A], [0.9], [5])}, r"labels must lie in \[0, 1\)"),
        ({"a": det([A], [0.9, 0.8], [0])}, "expected 1 scores"),
        ({"a": {"polygons": [A[:6]], "scores": [0.9], "labels": [0]}}, r"shape \[N, 8\]"),
    ],
)
def test_bad_in_memory_input(bad, match):
    with pytest.raises(ValueError, match=match):
        evaluate(bad, {"a": gt([A], [0])}, class_names=["x"])


def test_bad_thresholds_and_empty_ground_truth():
    with pytest.raises(ValueError, match="iou_thrs"):
        evaluate({}, {"a": gt([A], [0])}, iou_thrs=1.0)
    with pytest.raises(ValueError, match="iou_thrs"):
        evaluate({}, {"a": gt([A], [0])}, iou_thrs="voc")
    with pytest.raises(ValueError, match="no non-difficult object"):
        evaluate({}, {"a": gt([A], [0], [True])})


# --------------------------------------------------------------------------------- Task1 files
def _line(image_id, score, poly):
    return f"{image_id} {score} " + " ".join(str(v) for v in poly)


@pytest.fixture
def dota_dirs(tmp_path):
    labels, results = tmp_path / "labelTxt", tmp_path / "results"
    labels.mkdir(), results.mkdir()
    (labels / "P1.txt").write_text(
        "imagesource:GoogleEarth\ngsd:0.1\n"
        + " ".join(map(str, A))
        + " plane 0\n"
        + " ".join(map(str, B))
        + " plane 1\n"
        + " ".join(map(str, C))
        + " ship 0\n"
    )
    (labels / "P2.txt").write_text(" ".join(map(str, A)) + " ship\n")  # no header, no difficult flag
    (results / "Task1_plane.txt").write_text(
        "\n".join([_line("P1", 0.9, A), _line("P1", 0.8, B), _line("P2", 0.7, A)]) + "\n"
    )
    (results / "Task1_ship.txt").write_text("\n".join([_line("P1", 0.6, C), _line("P2", 0.95, FAR)]) + "\n")
    return results, labels


def test_task1_round_trip(dota_dirs):
    results, labels = dota_dirs
    out = evaluate_task1(results, labels)
    # plane: A TP, B (difficult) ignored, P2 A FP -> rec [1, 1], prec [1, .5] -> AP 1
    # ship: FAR FP (0.95), C TP -> rec [0, .5], prec [0, .5]; 2 ships -> levels 0..0.5 -> 6/11 * 0.5
    assert out["per_class"] == {"plane": pytest.approx(1.0), "ship": pytest.approx(3 / 11)}
    assert out["mAP"] == pytest.approx((1 + 3 / 11) / 2)
    dets, anns, names = load_task1(results, labels)
    assert names == ["plane", "ship"] and sorted(anns) == ["P1", "P2"]
    assert list(anns["P1"]["difficult"]) == [False, True, False]
    r = evaluate(dets, anns, class_names=names)  # same numbers in memory
    assert r.per_class() == out["per_class"]


def test_task1_missing_class_file_ap_zero_and_other_classes_ignored(dota_dirs):
    results, labels = dota_dirs
    out = evaluate_task1(results, labels, classes=["plane", "ship", "harbor"])
    assert math.isnan(out["per_class"]["harbor"])  # no harbor objects: undefined, not in mAP
    (results / "Task1_ship.txt").unlink()
    assert evaluate_task1(results, labels)["per_class"]["ship"] == 0.0  # devkit: crash
    with pytest.raises(ValueError, match="no Task1_<class>.txt files"):
        evaluate_task1(labels, labels)  # a folder without result files is a wrong folder
    # a result file of a class that is not evaluated is not read, as the devkit reads only its classes' files
    before = evaluate_task1(results, labels)
    (results / "Task1_harbour.txt").write_text(_line("P1", 0.5, A) + "\nnot even a Task1 line\n")
    assert evaluate_task1(results, labels) == before
    ignored = []
    load_task1(results, labels, ["plane"], ignored)
    assert ignored == ["harbour"]


@pytest.mark.parametrize(
    "line, match",
    [
        ("P1 0.5 1 2 3 4 5 6 7", r"Task1_plane\.txt:2: expected 10 fields"),
        ("P9 0.5 " + " ".join(map(str, A)), r"Task1_plane\.txt:2: unknown image id 'P9'"),
        ("P1 nan " + " ".join(map(str, A)), r"Task1_plane\.txt:2: NaN or infinite"),
        ("P1 high " + " ".join(map(str, A)), r"Task1_plane\.txt:2: non-numeric"),
    ],
)
def test_task1_bad_lines_name_file_and_line(dota_dirs, line, match):
    results, labels = dota_dirs
    (results / "Task1_plane.txt").write_text(_line("P1", 0.9, A) + "\n" + line + "\n")
    with pytest.raises(ValueError, match=match):
        evaluate_task1(results, labels)


def test_labeltxt_bad_line_names_file_and_line(dota_dirs):
    results, labels = dota_dirs
    (labels / "P3.txt").write_text(" ".join(map(str, A)) + " plane 0\n1 2 3 plane\n")
    with pytest.raises(ValueError, match=r"P3\.txt:2: expected"):
        evaluate_task1(results, labels)


# ------------------------------------------------------------------------------------------- CLI
def test_cli_on_task1_files(dota_dirs, tmp_path, capsys):
    results, labels = dota_dirs
    out_json = tmp_path / "eval.json"
    assert (
        cli(["--results", str(results), "--labels", str(labels), "--iou-thrs", "coco", "--output", str(out_json)]) == 0
    )
    printed = capsys.readouterr().out
    assert "| plane | 1 | 3 |" in printed and "AP50:95" in printed
    data = json.loads(out_json.read_text())
    assert data["classes"]["plane"]["ap"]["0.5"] == pytest.approx(1.0)
    assert cli(["--results", str(results / "nowhere"), "--labels", str(labels)]) == 2


def test_cli_on_detections_json(dota_dirs, tmp_path, capsys):
    _, labels = dota_dirs
    dets = {"P1": {"polygons": [A, C], "scores": [0.9, 0.8], "labels": ["plane", "ship"]}}
    path = tmp_path / "dets.json"
    path.write_text(json.dumps(dets))
    assert cli(["--detections", str(path), "--labels", str(labels), "--area"]) == 0
    assert "area under PR envelope" in capsys.readouterr().out


def test_pr_curve_pngs(dota_dirs, tmp_path):
    pytest.importorskip("rdet.plot")  # drawn by rdet.plot.line_plot
    import cv2

    from rdet.eval import plot_pr_curves

    dets, anns, names = load_task1(*dota_dirs)
    files = plot_pr_curves(evaluate(dets, anns, (0.5, 0.75), class_names=names), tmp_path / "pr")
    assert [f.name for f in files] == ["pr_plane.png", "pr_ship.png"]
    assert cv2.imread(str(files[0])).shape == (500, 800, 3)


class _FakeDetector(torch.nn.Module):
    """Predicts, in every image, box A (class x) and box B also as class x; B's object is class y."""

    class_names = ["x", "y"]

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def predict(self, images):
        from rdet.detections import Detections

        boxes = torch.tensor([[5.0, 5.0, 10.0, 10.0, 0.0], [25.0, 5.0, 10.0, 10.0, 0.0]])  # == A, == B
        return [Detections(boxes, torch.tensor([0.9, 0.8]), torch.tensor([0, 0]), self.class_names) for _ in images]


def test_run_model_and_detections_json_round_trip(tmp_path):
    target = lambda k: {
        "image_id": f"i{k}",
        "polygons": torch.tensor([A, B], dtype=torch.float32),  # noqa: E731
        "labels": torch.tensor([0, 1]),
        "difficult": torch.tensor([False, False]),
    }
    batches = [{"images": torch.zeros(2, 3, 8, 8), "targets": [target(0), target(1)]}]
    dets, anns, names = run_model(_FakeDetector(), batches, progress=False)
    # class x, scores .9 .9 .8 .8 -> TP TP FP FP: AP 1; class y: 2 objects, no detections: AP 0
    r = evaluate(dets, anns, class_names=names)
    assert names == ["x", "y"] and r.per_class() == {"x": pytest.approx(1.0), "y": 0.0}
    save_detections_json(dets, tmp_path / "d.json", names)
    again = evaluate(load_detections_json(tmp_path / "d.json", names), anns, class_names=names)
    np.testing.assert_array_equal(again.ap, r.ap)
    # rdet.detections.Detections objects are accepted as they are (polygons() is a method there)
    direct = {f"i{k}": _FakeDetector().predict([0])[0] for k in range(2)}
    np.testing.assert_array_equal(evaluate(direct, anns, class_names=names).ap, r.ap)
    with pytest.raises(ValueError, match=r"detections\['i0'\].class_names \['x', 'y'\] differ"):
        evaluate(direct, anns, class_names=["y", "x"])  # a model whose labels index another class list


# --------------------------------------------------------------- oracle: the devkit-style loop
def _bench():
    spec = importlib.util.spec_from_file_location("bench_eval", ROOT / "benchmarks" / "bench_eval.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("use07", [True, False])
def test_matches_per_detection_loop_on_random_scenes(use07):
    pytest.importorskip("shapely")
    bench = _bench()
    # Crowded: 40 objects of 3 classes in 200 x 200 px, so overlaps, duplicates and ties abound.
    dets, anns = bench.make_scene(12, 40, num_classes=3, size=200.0, seed=3)
    r = evaluate(dets, anns, (0.3, 0.5, 0.7), use_07_metric=use07)
    for t, thr in enumerate(r.iou_thrs):
        expected = bench.naive_evaluate(dets, anns, 3, thr, use07)
        np.testing.assert_allclose(r.ap[:, t], expected, rtol=0, atol=1e-12)
