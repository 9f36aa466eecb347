"""Benchmark: the same R-18 training budget alone vs distilled (LD + KD) from a trained R-34, on synthetic data.

Everything is generated and trained from scratch: synthetic train/val scenes (``rdet.data.synthetic``), one
R-34 teacher, then for each seed an R-18 trained alone and an R-18 distilled from the teacher, with the same
architecture (distribution head, ``reg_max=8``), data, augmentation, schedule and iteration budget; only the
LD/KD terms differ. Both are scored on the validation scenes with the DOTA metric (AP50 and AP50:95), and the
script prints a markdown table of mean +- std over the seeds.

    .venv/bin/python benchmarks/bench_distill.py --quick                       # smoke run, < 1 minute
    .venv/bin/python benchmarks/bench_distill.py --out /work/notes/bench_distill.md    # the default size
    .venv/bin/python benchmarks/bench_distill.py --size 256 --octave-base-scale 4 --train-images 512 \\
        --teacher-iters 3000 --student-iters 1000 --device cuda                # a larger run, on a GPU

Models are the quickstart's (narrow FPN/head, KLD-stable, AdamW), scaled to the image size; anchors start at
``octave_base_scale * 8`` pixels (default 2: 16 px, so the small synthetic objects of 96 px scenes can match).
The defaults take 10-13 minutes on 2 shared CPU cores; at that budget the detectors are far from converged,
so the numbers show a trend, not what distillation gives at scale.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

# Spinning OpenMP threads are 10-50x slower on shared cores (see rdet/bench/fps.py); libgomp reads this when torch is
# imported, so it is set first. An explicit OMP_WAIT_POLICY wins; the report prints the value.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

import rdet  # noqa: E402
from rdet.config import Config, DistillConfig, LossConfig  # noqa: E402
from rdet.data.synthetic import make_synthetic_dataset  # noqa: E402
from rdet.engine.data import build_loader  # noqa: E402
from rdet.engine.evaluate import evaluate_model  # noqa: E402


def make_config(args, depth: int, data: Path, work_dir: Path, seed: int, iters: int) -> Config:
    """The benchmark's detector: quickstart architecture (R-``depth``, narrow head) with a distribution head."""
    c = Config(name=f"bench_distill_r{depth}")
    m = c.model
    m.backbone.depth, m.backbone.frozen_stages, m.backbone.norm_eval = depth, 0, False
    m.neck.out_channels = m.head.feat_channels = args.width
    m.head.stacked_convs = args.stacked_convs
    m.head.num_classes = 4
    m.anchors.octave_base_scale = args.octave_base_scale
    m.head.reg_max, m.head.reg_range, m.head.angle_range = 8, (-2.0, 2.0), (-5.0, 2.0)
    m.head.reg_decoded_bbox = True
    m.head.loss_bbox = LossConfig(type="kld", stable=True, fun="log1p", tau=1.0, sqrt=False, loss_weight=5.5)
    d = c.data
    d.class_list = "synthetic"
    d.train_images, d.train_labels = str(data / "train/images"), str(data / "train/labelTxt")
    d.val_images, d.val_labels = str(data / "val/images"), str(data / "val/labelTxt")
    d.img_size = (args.size, args.size)
    d.flip = (0.25, 0.25, 0.25)
    t = c.train
    t.optimizer, t.lr, t.weight_decay = "adamw", args.lr, 0.05
    t.batch_size, t.workers, t.max_iters, t.seed = args.batch_size, 0, iters, seed
    t.warmup_iters = max(1, iters // 10)
    t.milestones = (int(iters * 0.8), int(iters * 0.93))  # iterations (max_iters > 0), as the 1x shape
    t.eval_interval, t.log_interval, t.amp = 0, 10, True
    t.device = args.device
    t.work_dir = str(work_dir)
    return c


def score(checkpoint: str, config: Config, device: str) -> tuple[float, float]:
    model = rdet.load_checkpoint(
        checkpoint, device=device if device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    )
    result = evaluate_model(model, build_loader(config, "val")[0], progress=False)
    return result.map_at(0.5), result.mean_map


def mean_std(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * statistics.mean(values):.1f} +- {100 * sd:.1f}"


def run(args) -> str:
    t_start = time.time()
    work = Path(args.work or tempfile.mkdtemp(prefix="bench_distill_"))
    data = work / "data"
    make_synthetic_dataset(data / "train", args.train_images, size=args.size, seed=0)
    make_synthetic_dataset(data / "val", args.val_images, size=args.size, seed=1, prefix="val")

    teacher_cfg = make_config(args, 34, data, work / "teacher", 0, args.teacher_iters)
    if args.teacher_weights:
        teacher_ckpt = args.teacher_weights
    else:
        teacher_ckpt = rdet.train(teacher_cfg, progress=args.progress)["checkpoint"]
    rows = {"teacher": [score(teacher_ckpt, teacher_cfg, args.device)]}
    print(f"teacher R-34 ({args.teacher_iters} it): AP50 {rows['teacher'][0][0]:.4f}", flush=True)
    for seed in args.seeds:
        alone = make_config(args, 18, data, work / f"alone_{seed}", seed, args.student_iters)
        ckpt = rdet.train(alone, progress=args.progress)["checkpoint"]
        rows.setdefault("alone", []).append(score(ckpt, alone, args.device))
        student = make_config(args, 18, data, work / f"distilled_{seed}", seed, args.student_iters)
        student.distill = DistillConfig(
            ld_weight=args.ld_weight,
            kd_weight=args.kd_weight,
            temperature=5.0,
            vlr_alpha=0.25,
            vlr_horizontal=args.horizontal,
        )
        ckpt = rdet.distill(student, teacher=teacher_cfg, teacher_weights=teacher_ckpt, progress=args.progress)[
            "checkpoint"
        ]
        rows.setdefault("distilled", []).append(score(ckpt, student, args.device))
        print(
            f"seed {seed}: alone AP50 {rows['alone'][-1][0]:.4f}, distilled AP50 {rows['distilled'][-1][0]:.4f}",
            flush=True,
        )
    minutes = (time.time() - t_start) / 60
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu_minutes = (usage.ru_utime + usage.ru_stime) / 60
    load = os.getloadavg()[1]  # a shared machine: wall time says little without the load

    names = {
        "teacher": f"R-34 teacher ({args.teacher_iters} it, seed 0)",
        "alone": f"R-18 alone ({args.student_iters} it)",
        "distilled": f"R-18 <- R-34, LD + KD ({args.student_iters} it)",
    }
    lines = ["| model | AP50 (%) | AP50:95 (%) | per seed AP50 |", "|---|---|---|---|"]
    for key in ("teacher", "alone", "distilled"):
        ap50 = [r[0] for r in rows[key]]
        ap = [r[1] for r in rows[key]]
        lines.append(
            f"| {names[key]} | {mean_std(ap50)} | {mean_std(ap)} | {', '.join(f'{100 * v:.1f}' for v in ap50)} |"
        )
    table = "\n".join(lines)
    device = (
        torch.cuda.get_device_name()
        if args.device != "cpu" and torch.cuda.is_available()
        else f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')})"
    )
    setting = (
        f"{args.train_images} train / {args.val_images} val synthetic scenes of {args.size} px (4 classes), "
        f"batch {args.batch_size}, FPN/head width {args.width}, {args.stacked_convs} stacked convs, "
        f"anchors from {8 * args.octave_base_scale:g} px, reg_max 8, KLD-stable, AdamW lr {args.lr}, flips; "
        f"LD weight {args.ld_weight}, KD weight {args.kd_weight}, T 5, VLR alpha 0.25 "
        f"({'axis-aligned' if args.horizontal else 'rotated'} IoU); seeds {list(args.seeds)}; "
        f"mean +- sample std over seeds"
    )
    report = (
        f"{table}\n\n- setting: {setting}\n- device: {device}\n"
        f"- date: {datetime.datetime.now().isoformat(timespec='minutes')}\n"
        f"- wall time: {minutes:.1f} min (process CPU time {cpu_minutes:.1f} min; machine load average "
        f"{load:.1f} over the last 5 min)\n- command: `{' '.join([Path(sys.executable).name, *sys.argv])}`\n"
    )
    (work / "results.json").write_text(json.dumps({k: v for k, v in rows.items()}, indent=2))
    return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke run: tiny data and budgets (numbers meaningless)")
    p.add_argument("--train-images", type=int, default=96)
    p.add_argument("--val-images", type=int, default=32)
    p.add_argument("--size", type=int, default=96, help="scene size in pixels (multiple of 32)")
    p.add_argument("--width", type=int, default=32, help="FPN and head channels")
    p.add_argument("--stacked-convs", type=int, default=1)
    p.add_argument("--octave-base-scale", type=float, default=2.0)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--teacher-iters", type=int, default=400)
    p.add_argument("--student-iters", type=int, default=100)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--ld-weight", type=float, default=15.0)
    p.add_argument("--kd-weight", type=float, default=15.0)
    p.add_argument("--horizontal", action="store_true", help="the paper's axis-aligned IoU for the VLR")
    p.add_argument("--teacher-weights", help="reuse a teacher checkpoint of this benchmark's R-34 config")
    p.add_argument("--device", default="auto")
    p.add_argument("--work", help="working folder (default: a new temporary folder)")
    p.add_argument("--progress", action="store_true", help="show progress bars")
    p.add_argument("--out", help="also write the report (markdown) to this file")
    args = p.parse_args(argv)
    if args.quick:
        args.train_images, args.val_images, args.size, args.width = 8, 4, 64, 16
        args.teacher_iters, args.student_iters, args.batch_size = 4, 2, 2
    torch.set_num_threads(os.cpu_count() or 1)
    report = run(args)
    print(report)
    if args.out:
        Path(args.out).write_text(f"# bench_distill: R-18 alone vs distilled from R-34 (synthetic data)\n\n{report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
