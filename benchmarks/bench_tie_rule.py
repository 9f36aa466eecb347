"""Effect of the assignment tie rule on training: AP50 on synthetic scenes with ``gt_max_assign_all`` on and off.

A small object wholly inside several anchors of one shape has the same IoU with each of them. rdet keeps all of
the tied anchors as its positives (``model.head.gt_max_assign_all=True``, MMDetection's default rule on exact
IoUs); MMRotate's float noise keeps only some of them (docs/architecture.md, "Assignment ties"), and
``gt_max_assign_all=False`` keeps only the first, the far end of that range. Both runs use the same seed, data and
schedule as ``tests/test_learning.py::test_synthetic_scenes_reach_ap50_07`` (R-18, 64-channel FPN/head,
KLD-stable, AdamW, 120 iterations of 8 images, 128 px scenes, anchors from 16 px) and print AP50 on 24 held-out
scenes, plus how many positives each rule gives on the first training batch.

    .venv/bin/python benchmarks/bench_tie_rule.py [--iters 120] [--seed 0] [--out /tmp/tie_rule.md]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # spinning OpenMP threads on shared cores

import torch  # noqa: E402

import rdet  # noqa: E402
from rdet.config import Config, LossConfig  # noqa: E402
from rdet.data.synthetic import make_synthetic_dataset  # noqa: E402
from rdet.engine.data import build_loader  # noqa: E402
from rdet.engine.evaluate import evaluate_model  # noqa: E402

CLASSES = ("plane", "ship", "small-vehicle", "storage-tank")


def config(root: Path, work_dir: Path, iters: int, all_ties: bool) -> Config:
    """tests/test_learning.py's ``small_config`` (128 px scenes), with the tie rule switched."""
    c = Config(name="tie-rule")
    m = c.model
    m.backbone.depth, m.backbone.frozen_stages, m.backbone.norm_eval = 18, 0, False
    m.neck.out_channels = m.head.feat_channels = 64
    m.head.stacked_convs = 2
    c.data.classes, m.head.num_classes = CLASSES, len(CLASSES)
    m.anchors.octave_base_scale = 2.0
    m.head.reg_decoded_bbox = True
    m.head.loss_bbox = LossConfig(type="kld", stable=True, fun="log1p", tau=1.0, sqrt=False, loss_weight=5.5)
    m.head.gt_max_assign_all = all_ties
    c.data.train_images, c.data.train_labels = str(root / "train/images"), str(root / "train/labelTxt")
    c.data.val_images, c.data.val_labels = str(root / "val/images"), str(root / "val/labelTxt")
    c.data.img_size = (128, 128)
    t = c.train
    t.optimizer, t.lr, t.weight_decay = "adamw", 2e-3, 0.05
    t.batch_size, t.workers, t.warmup_iters, t.eval_interval, t.log_interval = 8, 0, 20, 0, 20
    t.max_iters, t.milestones = iters, (int(iters * 0.8),)
    t.work_dir = str(work_dir)
    return c


def first_batch_positives(cfg: Config) -> tuple[int, int]:
    """(positives, gts) of the first training batch under ``cfg``'s tie rule."""
    torch.manual_seed(0)
    model = rdet.build_model(cfg)
    batch = next(iter(build_loader(cfg, "train")[0]))
    images, targets = batch["images"], batch["targets"]
    x = model.preprocess_image(images)
    out = model.head_outputs(x, normalized=True)
    tg = model.assign(out.anchors, targets)
    return int(tg.pos.sum()), sum(int(t["boxes"].shape[0]) for t in targets)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iters", type=int, default=120)
    ap.add_argument("--seed", type=int, default=0, help="training seed (model init, batch order, augmentation)")
    ap.add_argument("--out", default=None, help="also write the markdown table here")
    a = ap.parse_args(argv)
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_synthetic_dataset(root / "train", 96, size=128, seed=0, objects=(2, 5), class_ids=(0, 3))
        make_synthetic_dataset(root / "val", 24, size=128, seed=1, objects=(2, 5), class_ids=(0, 3))
        for all_ties in (True, False):
            cfg = config(root, root / f"run_{all_ties}", a.iters, all_ties)
            cfg.train.seed = a.seed
            npos, ngt = first_batch_positives(cfg)
            torch.manual_seed(a.seed)
            start = time.perf_counter()
            result = rdet.train(cfg, progress=False)
            model = rdet.load_checkpoint(result["checkpoint"])
            metric = evaluate_model(model, build_loader(cfg, "val")[0], iou_thrs=(0.5,), progress=False)
            rule = "all tied anchors (rdet)" if all_ties else "first tied anchor only"
            rows.append(
                f"| `gt_max_assign_all={all_ties}`: {rule} | {a.seed} | {npos} / {ngt} | {metric.map_at(0.5):.3f} | "
                f"{time.perf_counter() - start:.0f} |"
            )
            print(rows[-1], flush=True)
    table = "\n".join(["| tie rule | seed | positives / gts, first batch | AP50 (val, 24 scenes) | train + eval s |",
                       "|---|---|---|---|---|", *rows])  # fmt: skip
    print(table)
    if a.out:
        Path(a.out).write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
