"""The official DOTA Task1 metric (oriented boxes), vectorised, at any set of IoU thresholds.

It computes what the DOTA devkit's ``dota_evaluation_task1.py`` computes (the script behind the DOTA
server and the published tables), per class:

1. detections of the class, over all images, are sorted by descending score (stably: ties keep
   their input order; the devkit's ``np.argsort`` leaves tie order unspecified);
2. each detection is compared with the ground-truth polygons of its class in its image by exact
   polygon IoU (``rdet.ops.poly_iou``) and takes the one of maximum IoU (ties: the first in file
   order). It is *not* offered the second-best object when the best one is already taken;
3. if that IoU is strictly greater than the threshold (``>``, as the devkit; an IoU of exactly 0.5
   is a miss at 0.5): a *difficult* object makes the detection ignored (neither TP nor FP), an
   object not yet matched makes it a TP, an object already matched makes it an FP (duplicate);
   otherwise it is an FP;
4. ``npos`` = number of non-difficult objects; recall = cumTP / npos, precision = cumTP / cumDet;
5. AP is VOC07's 11-point interpolation (``use_07_metric=True``, the official setting) or the area
   under the monotone precision envelope (``use_07_metric=False``); mAP is the mean over classes.

Because step 2 does not depend on which objects are already matched, the best object of every
detection is found once for all thresholds, and the sequential loop reduces to "the first detection
(in score order) to pick an object above the threshold is its TP" — a ``np.unique`` per threshold.

Devkit quirks, and what rdet does:

* The devkit first keeps objects whose horizontal box overlaps the detection's (with the VOC ``+1``
  pixel convention) and computes polygon IoU only for those. Polygons with a positive-area overlap
  always have overlapping horizontal boxes, so the filter never changes a result (for thresholds
  >= 0); rdet filters the same way (strict overlap) purely for speed.
* Its 11 recall levels are ``np.arange(0., 1.1, 0.1)``, whose 4th, 7th and 8th values are
  0.30000000000000004, 0.6000000000000001 and 0.7000000000000001: a recall of exactly 0.3, 0.6 or
  0.7 (e.g. 3 of 10 objects) does not reach "its" level. rdet uses the same levels, so numbers are
  bit-identical; ``test_eval_dota.py`` pins this.
* It crashes on a class without a result file or with an empty one; rdet gives such a class AP 0.
* A class without non-difficult ground truth has undefined AP (the devkit divides by ``npos = 0``;
  with the 11-point metric that silently counts as 0 in its mean). rdet reports NaN (``None`` in
  JSON, ``-`` in tables) and leaves the class out of the mean, as COCO does. On DOTA val/test every
  class has objects, so the official mAP is unaffected.
* Ignored (difficult) detections are left out of the stored PR arrays; they do not change AP.

AP50:95. ``iou_thrs='coco'`` evaluates 0.50:0.05:0.95 and ``EvalResult.mean_map`` is the true mean of
the ten mAPs. The Rotated-LD repository's ``tests/dota_evaluation_task1.py`` (used for the
localization-distillation tables) never resets its running sum between thresholds, so each printed
"AP<t>" after the first is inflated by the previous printed value divided by the number of classes,
and its final "AP" (0.50:0.95) reads higher than the true mean; ``rotated_ld_printed_ap`` reproduces
that figure from an ``EvalResult`` for comparison. See ``docs/evaluation.md``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

COCO_IOU_THRS = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))
# Exactly the devkit's recall levels, float rounding included (see the module docstring).
_VOC07_RECALLS = np.arange(0.0, 1.1, 0.1)
_IOU_CHUNK = 1 << 16  # polygon pairs per rdet.ops.poly_iou call: bounds peak memory


@dataclass
class EvalResult:
    """Per-class, per-threshold results of ``evaluate``.

    Attributes:
        class_names (list[str]): C names; row ``c`` of every array is class ``c``.
        iou_thrs (tuple[float, ...]): the T thresholds.
        use_07_metric (bool): 11-point AP (True) or area under the PR envelope (False).
        ap (np.ndarray[C, T]): AP per class and threshold; NaN where the class has no non-difficult
            ground truth.
        num_gt (np.ndarray[C]): non-difficult objects (the devkit's ``npos``).
        num_difficult (np.ndarray[C]): difficult objects.
        num_dets (np.ndarray[C]): detections, ignored ones included.
        recall, precision (list[list[np.ndarray[K]]]): ``[c][t]`` PR curve in score order, K = number
            of non-ignored detections of class c at threshold t (empty where AP is NaN).
    """

    class_names: list[str]
    iou_thrs: tuple[float, ...]
    use_07_metric: bool
    ap: np.ndarray
    num_gt: np.ndarray
    num_difficult: np.ndarray
    num_dets: np.ndarray
    recall: list[list[np.ndarray]] = field(repr=False)
    precision: list[list[np.ndarray]] = field(repr=False)

    @property
    def map(self) -> np.ndarray:
        """np.ndarray[T]: mean AP over the classes that have non-difficult ground truth."""
        return self.ap[self.num_gt > 0].mean(axis=0)

    @property
    def mean_map(self) -> float:
        """Mean of ``map`` over the thresholds (AP50:95 when ``iou_thrs='coco'``)."""
        return float(self.map.mean())

    def thr_index(self, thr: float) -> int:
        """Column of ``thr`` in ``ap`` (ValueError if it was not evaluated)."""
        hits = [i for i, t in enumerate(self.iou_thrs) if math.isclose(t, thr, abs_tol=1e-9)]
        if not hits:
            raise ValueError(f"thr={thr} was not evaluated; iou_thrs={self.iou_thrs}")
        return hits[0]

    def map_at(self, thr: float) -> float:
        """mAP at one evaluated threshold."""
        return float(self.map[self.thr_index(thr)])

    def per_class(self, thr: float | None = None) -> dict[str, float]:
        """Class name -> AP at ``thr`` (default: the first threshold)."""
        t = 0 if thr is None else self.thr_index(thr)
        return {n: float(a) for n, a in zip(self.class_names, self.ap[:, t])}

    def table(self) -> str:
        """Markdown table, classes x thresholds, AP in percent; a ``mean`` column when T > 1."""
        heads = [f"AP{t * 100:g}" for t in self.iou_thrs]
        multi = len(self.iou_thrs) > 1
        if multi:
            heads.append("AP50:95" if self.iou_thrs == COCO_IOU_THRS else "mean")
        fmt = lambda v: "-" if np.isnan(v) else f"{100 * v:.2f}"  # noqa: E731
        rows = [f"| class | GT | dets | {' | '.join(heads)} |", "|---" * (3 + len(heads)) + "|"]
        for c, name in enumerate(self.class_names):
            vals = list(self.ap[c]) + ([self.ap[c].mean()] if multi else [])
            rows.append(f"| {name} | {self.num_gt[c]} | {self.num_dets[c]} | {' | '.join(map(fmt, vals))} |")
        vals = list(self.map) + ([self.mean_map] if multi else [])
        rows.append(f"| **mAP** | {self.num_gt.sum()} | {self.num_dets.sum()} | {' | '.join(map(fmt, vals))} |")
        metric = "VOC07 11-point" if self.use_07_metric else "area under PR envelope"
        return f"DOTA Task1 AP (%), polygon IoU > threshold, {metric}\n\n" + "\n".join(rows)

    def to_dict(self, include_pr: bool = False) -> dict:
        """Plain-Python summary (NaN -> None); PR arrays only with ``include_pr``."""
        num = lambda v: None if np.isnan(v) else float(v)  # noqa: E731
        keys = [f"{t:g}" for t in self.iou_thrs]
        out: dict = {
            "metric": "dota_task1",
            "use_07_metric": self.use_07_metric,
            "iou_thrs": list(self.iou_thrs),
            "mAP": dict(zip(keys, map(num, self.map))),
            "mean_mAP": num(self.mean_map),
            "classes": {},
        }
        for c, name in enumerate(self.class_names):
            entry = {
                "num_gt": int(self.num_gt[c]),
                "num_difficult": int(self.num_difficult[c]),
                "num_dets": int(self.num_dets[c]),
                "ap": dict(zip(keys, map(num, self.ap[c]))),
            }
            if include_pr:
                entry["recall"] = {k: r.tolist() for k, r in zip(keys, self.recall[c])}
                entry["precision"] = {k: p.tolist() for k, p in zip(keys, self.precision[c])}
            out["classes"][name] = entry
        return out

    def to_json(self, path: str | Path | None = None, include_pr: bool = False) -> str:
        """JSON text of ``to_dict``; also written to ``path`` when given."""
        text = json.dumps(self.to_dict(include_pr), indent=2)
        if path is not None:
            Path(path).write_text(text + "\n")
        return text


def voc_ap(
    recall: Sequence[float] | np.ndarray, precision: Sequence[float] | np.ndarray, use_07_metric: bool = True
) -> float:
    """Average precision of one PR curve, as the DOTA devkit's ``voc_ap``.

    Args:
        recall (array[K]): non-decreasing recall after each detection in score order.
        precision (array[K]): precision after each detection.
        use_07_metric: VOC07 11-point AP (mean over r in {0, 0.1, ..., 1} of the max precision at
            recall >= r, 0 if none) if True, else the area under the monotone precision envelope.

    Returns:
        float in [0, 1]; 0 for an empty curve.
    """
    rec, prec = np.asarray(recall, np.float64), np.asarray(precision, np.float64)
    if rec.ndim != 1 or rec.shape != prec.shape:
        raise ValueError(f"recall and precision must be 1-D of equal length, got {rec.shape} and {prec.shape}")
    if not (np.isfinite(rec).all() and np.isfinite(prec).all()):
        raise ValueError("recall and precision must be finite")
    if rec.size and (np.diff(rec) < 0).any():
        raise ValueError("recall must be non-decreasing (cumulative TP in score order)")
    if use_07_metric:
        if rec.size == 0:
            return 0.0
        env = np.maximum.accumulate(prec[::-1])[::-1]  # env[k] = max precision at index >= k
        idx = np.searchsorted(rec, _VOC07_RECALLS, side="left")  # recall >= r is a suffix
        ap = 0.0
        for i in idx:  # summed in the devkit's order, so results are bit-identical
            ap += (env[i] if i < rec.size else 0.0) / 11.0
        return float(ap)
    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.maximum.accumulate(np.concatenate(([0.0], prec, [0.0]))[::-1])[::-1]
    i = np.nonzero(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


# ----------------------------------------------------------------------------------- input parsing
def _get(record, name: str, default=None):
    if isinstance(record, Mapping):
        return record.get(name, default)
    return getattr(record, name, default)


def _array(value, name: str, dtype) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    try:
        return np.asarray(value, dtype=dtype)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name}: cannot convert to an array of {np.dtype(dtype).name}: {e}") from None


def _labels(value, n: int, name: str) -> np.ndarray:
    lab = _array(value, name, np.float64).reshape(-1)
    if lab.shape[0] != n:
        raise ValueError(f"{name}: expected {n} labels, got {lab.shape[0]}")
    if not (np.isfinite(lab).all() and (lab == np.round(lab)).all()):
        raise ValueError(f"{name}: labels must be integers")
    return lab.astype(np.int64)


def _polygons(record, name: str) -> np.ndarray:
    """[N, 8] float64 from ``polygons`` ([N, 8]) or ``boxes`` ([N, 5], rdet convention)."""
    polys = _get(record, "polygons")
    if callable(polys):  # rdet.detections.Detections.polygons() is a method
        polys = polys()
    if polys is not None:
        p = _array(polys, f"{name}.polygons", np.float64)
        p = p.reshape(0, 8) if p.size == 0 else p
        if p.ndim != 2 or p.shape[1] != 8:
            raise ValueError(f"{name}.polygons must have shape [N, 8], got {p.shape}")
    else:
        boxes = _get(record, "boxes")
        if boxes is None:
            raise ValueError(f"{name}: needs 'polygons' [N, 8] or 'boxes' [N, 5]")
        b = torch.as_tensor(_array(boxes, f"{name}.boxes", np.float64))
        b = b.reshape(0, 5) if b.numel() == 0 else b
        if b.ndim != 2 or b.shape[1] != 5:
            raise ValueError(f"{name}.boxes must have shape [N, 5] (cx, cy, w, h, angle), got {tuple(b.shape)}")
        from rdet.boxes import obb2poly

        p = obb2poly(b).numpy()
    if not np.isfinite(p).all():
        raise ValueError(f"{name}: coordinates must be finite")
    return p


def _image_id(record, index: int) -> str:
    image_id = _get(record, "image_id")
    if image_id is None and _get(record, "image_path") is not None:
        image_id = Path(_get(record, "image_path")).stem
    if image_id is None:
        raise ValueError(f"annotations[{index}]: needs 'image_id' or 'image_path' to name its image")
    return str(image_id)


def _items(records, what: str, ids: list[str] | None = None) -> list[tuple[str, object]]:
    """(image_id, record) pairs from a dict keyed by image id or a list of records."""
    if isinstance(records, Mapping):
        return [(str(k), v) for k, v in records.items()]
    records = list(records)
    if ids is None:  # annotations
        return [(_image_id(r, i), r) for i, r in enumerate(records)]
    if all(_get(r, "image_id") is not None for r in records):
        return [(str(_get(r, "image_id")), r) for r in records]
    if len(records) != len(ids):
        raise ValueError(
            f"{what}: a list without 'image_id' must align with the annotations "
            f"({len(records)} records for {len(ids)} images)"
        )
    return list(zip(ids, records))


def _flatten(detections, annotations, class_names):
    """Flat arrays of all objects and detections (image index per row) and the class names."""
    ann_items = _items(annotations, "annotations")
    ids = [i for i, _ in ann_items]
    if len(set(ids)) != len(ids):
        raise ValueError("annotations: duplicate image ids " + str(sorted({i for i in ids if ids.count(i) > 1})[:5]))
    if class_names is None:
        found = {tuple(n) for _, a in ann_items if (n := _get(a, "class_names")) is not None}
        if len(found) > 1:
            raise ValueError("annotations disagree on class_names; pass class_names=")
        class_names = list(found.pop()) if found else None
    g_polys, g_labels, g_img, g_diff = [], [], [], []
    for k, (image_id, a) in enumerate(ann_items):
        name = f"annotations[{image_id!r}]"
        p = _polygons(a, name)
        g_polys.append(p)
        g_labels.append(_labels(_get(a, "labels"), len(p), f"{name}.labels"))
        diff = _get(a, "difficult")
        d = np.zeros(len(p), bool) if diff is None else _array(diff, f"{name}.difficult", np.float64).reshape(-1)
        if d.shape[0] != len(p):
            raise ValueError(f"{name}.difficult: expected {len(p)} flags, got {d.shape[0]}")
        g_diff.append(d != 0)
        g_img.append(np.full(len(p), k))
    index = {image_id: k for k, image_id in enumerate(ids)}
    d_polys, d_scores, d_labels, d_img = [], [], [], []
    for image_id, r in _items(detections, "detections", ids):
        name = f"detections[{image_id!r}]"
        if image_id not in index:
            raise ValueError(f"{name}: unknown image id (not in annotations)")
        names = _get(r, "class_names")  # e.g. rdet Detections: labels must index the same list
        if names and class_names is not None and list(map(str, names)) != list(map(str, class_names)):
            raise ValueError(f"{name}.class_names {list(names)} differ from the evaluated {list(class_names)}")
        p = _polygons(r, name)
        s = _array(_get(r, "scores"), f"{name}.scores", np.float64).reshape(-1)
        if s.shape[0] != len(p):
            raise ValueError(f"{name}.scores: expected {len(p)} scores, got {s.shape[0]}")
        if not np.isfinite(s).all():
            raise ValueError(f"{name}.scores: NaN or infinite score at index {int(np.argmin(np.isfinite(s)))}")
        d_polys.append(p)
        d_scores.append(s)
        d_labels.append(_labels(_get(r, "labels"), len(p), f"{name}.labels"))
        d_img.append(np.full(len(p), index[image_id]))
    cat = lambda xs, shape, dt: np.concatenate(xs).astype(dt) if xs else np.zeros(shape, dt)  # noqa: E731
    gt = (cat(g_polys, (0, 8), np.float64), cat(g_labels, 0, np.int64), cat(g_img, 0, np.int64), cat(g_diff, 0, bool))
    det = (
        cat(d_polys, (0, 8), np.float64),
        cat(d_scores, 0, np.float64),
        cat(d_labels, 0, np.int64),
        cat(d_img, 0, np.int64),
    )
    n_cls = int(max(gt[1].max(initial=-1), det[2].max(initial=-1))) + 1
    if class_names is None:
        class_names = [f"class_{c}" for c in range(n_cls)]
    class_names = [str(n) for n in class_names]
    for what, lab in (("annotations", gt[1]), ("detections", det[2])):
        if lab.size and (lab.min() < 0 or lab.max() >= len(class_names)):
            raise ValueError(f"{what}: labels must lie in [0, {len(class_names)}) for class_names={class_names}")
    return gt, det, class_names, len(ids)


# ------------------------------------------------------------------------------------ the metric
def _hboxes(polys: np.ndarray) -> np.ndarray:
    """[N, 8] polygons -> [N, 4] enclosing (x1, y1, x2, y2)."""
    return np.concatenate(
        [
            polys[:, 0::2].min(1, keepdims=True),
            polys[:, 1::2].min(1, keepdims=True),
            polys[:, 0::2].max(1, keepdims=True),
            polys[:, 1::2].max(1, keepdims=True),
        ],
        1,
    )


def _best_gt(det, gt, num_images: int) -> tuple[np.ndarray, np.ndarray]:
    """Max IoU over same-image, same-class objects per detection, and the first object reaching it.

    Returns:
        ovmax (np.ndarray[D]) (0 without a candidate), jmax (np.ndarray[D] int, -1 without one).
    """
    from rdet.ops import poly_iou

    (d_poly, _, d_lab, d_img), (g_poly, g_lab, g_img, _) = det, gt
    ovmax, jmax = np.zeros(len(d_poly)), np.full(len(d_poly), -1, np.int64)
    d_hb, g_hb = _hboxes(d_poly), _hboxes(g_poly)
    d_ord, g_ord = np.argsort(d_img, kind="stable"), np.argsort(g_img, kind="stable")
    d_lim = np.searchsorted(d_img[d_ord], np.arange(num_images + 1))
    g_lim = np.searchsorted(g_img[g_ord], np.arange(num_images + 1))
    pd, pg = [], []
    for i in range(num_images):
        di, gi = d_ord[d_lim[i] : d_lim[i + 1]], g_ord[g_lim[i] : g_lim[i + 1]]
        if len(di) == 0 or len(gi) == 0:
            continue
        a, b = d_hb[di][:, None], g_hb[gi][None]  # [Di, 1, 4], [1, Gi, 4]
        # Positive-area polygon overlap implies strict horizontal-box overlap: a lossless pre-filter.
        ok = (
            (d_lab[di][:, None] == g_lab[gi][None])
            & (np.minimum(a[..., 2], b[..., 2]) > np.maximum(a[..., 0], b[..., 0]))
            & (np.minimum(a[..., 3], b[..., 3]) > np.maximum(a[..., 1], b[..., 1]))
        )
        r, c = np.nonzero(ok)
        pd.append(di[r])
        pg.append(gi[c])
    if not pd or sum(map(len, pd)) == 0:
        return ovmax, jmax
    pd, pg = np.concatenate(pd), np.concatenate(pg)  # type: ignore[assignment]  # lists of arrays -> arrays
    iou = np.empty(len(pd))
    for s in range(0, len(pd), _IOU_CHUNK):
        sl = slice(s, s + _IOU_CHUNK)
        iou[sl] = (
            poly_iou(torch.from_numpy(d_poly[pd[sl]]), torch.from_numpy(g_poly[pg[sl]]), aligned=True).double().numpy()
        )
    # A zero-area polygon pair has 0/0 IoU; it covers nothing, so it counts as no overlap.
    iou = np.where(np.isfinite(iou), iou, 0.0)
    order = np.lexsort((pg, -iou, pd))  # per detection: highest IoU first, ties -> lowest object index
    first = np.ones(len(order), bool)
    first[1:] = pd[order][1:] != pd[order][:-1]
    sel = order[first]
    ovmax[pd[sel]], jmax[pd[sel]] = iou[sel], pg[sel]
    return ovmax, jmax


def _iou_thrs(iou_thrs) -> tuple[float, ...]:
    if isinstance(iou_thrs, str):
        if iou_thrs != "coco":
            raise ValueError(f"iou_thrs: expected 'coco' or a sequence of floats, got {iou_thrs!r}")
        return COCO_IOU_THRS
    thrs = (float(iou_thrs),) if np.isscalar(iou_thrs) else tuple(float(t) for t in iou_thrs)  # type: ignore[arg-type]
    if not thrs or not all(0.0 <= t < 1.0 for t in thrs):
        raise ValueError(f"iou_thrs must be non-empty with values in [0, 1), got {iou_thrs}")
    return thrs


def evaluate(
    detections,
    annotations,
    iou_thrs: float | Sequence[float] | str = (0.5,),
    use_07_metric: bool = True,
    class_names: Sequence[str] | None = None,
) -> EvalResult:
    """DOTA Task1 AP per class at each IoU threshold (the devkit's semantics; module docstring).

    Args:
        detections: ``{image_id: record}`` or a list of records (with ``image_id``, or aligned with a
            list of annotations). A record (dict or object) has ``polygons`` (array[N, 8]) or
            ``boxes`` (array[N, 5], rdet convention), ``scores`` (array[N]), ``labels`` (array[N] int).
        annotations: ``{image_id: record}`` or a list of ``rdet.data.Annotations``-like records with
            ``polygons`` (array[M, 8]), ``labels`` (array[M] int), optional ``difficult`` (array[M]
            bool) and, in a list, ``image_id`` or ``image_path`` (image id = its stem). Every image
            evaluated must be listed, also those without objects.
        iou_thrs: a threshold, a sequence of them, or ``'coco'`` for 0.50:0.05:0.95.
        use_07_metric: 11-point AP (official DOTA) if True, else area under the PR envelope.
        class_names: names of labels 0..C-1; default: the annotations' ``class_names`` if they carry
            it, else ``class_<i>``.

    Returns:
        EvalResult. Raises ValueError on malformed input (non-finite scores or coordinates, labels
        out of range, detection image ids absent from the annotations, no non-difficult object).
    """
    thrs = _iou_thrs(iou_thrs)
    gt, det, class_names, num_images = _flatten(detections, annotations, class_names)
    g_lab, g_diff = gt[1], gt[3]
    d_score, d_lab = det[1], det[2]
    n_cls = len(class_names)
    num_gt = np.bincount(g_lab[~g_diff], minlength=n_cls)
    if num_gt.sum() == 0:
        raise ValueError("annotations contain no non-difficult object: AP is undefined for every class")
    ovmax, jmax = _best_gt(det, gt, num_images)
    order = np.lexsort((-d_score, d_lab))  # by class, then descending score; stable for ties
    lims = np.searchsorted(d_lab[order], np.arange(n_cls + 1))
    ap = np.full((n_cls, len(thrs)), np.nan)
    recall = [[np.zeros(0) for _ in thrs] for _ in range(n_cls)]
    precision = [[np.zeros(0) for _ in thrs] for _ in range(n_cls)]
    for t, thr in enumerate(thrs):
        hit = ovmax > thr  # thr >= 0, so a hit always has an object (jmax >= 0)
        ignored = hit & g_diff[np.where(hit, jmax, 0)]
        cand = order[(hit & ~ignored)[order]]  # matched detections in score order
        tp = np.zeros(len(d_score), bool)
        tp[cand[np.unique(jmax[cand], return_index=True)[1]]] = True  # first claim of each object
        for c in range(n_cls):
            if num_gt[c] == 0:
                continue
            oc = order[lims[c] : lims[c + 1]]
            tpc = tp[oc[~ignored[oc]]]
            ctp = np.cumsum(tpc)
            rec = ctp / float(num_gt[c])
            prec = ctp / np.arange(1, len(tpc) + 1)  # ignored detections are out, so no 0/0
            recall[c][t], precision[c][t] = rec, prec
            ap[c, t] = voc_ap(rec, prec, use_07_metric)
    return EvalResult(
        class_names=list(class_names),
        iou_thrs=thrs,
        use_07_metric=use_07_metric,
        ap=ap,
        num_gt=num_gt,
        num_difficult=np.bincount(g_lab[g_diff], minlength=n_cls),
        num_dets=np.bincount(d_lab, minlength=n_cls),
        recall=recall,
        precision=precision,
    )


def rotated_ld_printed_ap(result: EvalResult) -> float:
    """The "AP" (0.50:0.95) that Rotated-LD's ``tests/dota_evaluation_task1.py`` would print.

    That script keeps one running sum across thresholds: ``m_t = m_{t-1} / C + mAP_t`` with
    ``m_0 = 0`` and C classes, and prints ``mean_t m_t``; rdet's ``mean_map`` is ``mean_t mAP_t``.
    Classes without ground truth count as AP 0 there (its class list is fixed), as here.
    """
    m, total = 0.0, 0.0
    for t in range(len(result.iou_thrs)):
        m = (m + np.nan_to_num(result.ap[:, t]).sum()) / len(result.class_names)
        total += m
    return total / len(result.iou_thrs)
