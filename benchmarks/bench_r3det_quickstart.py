"""Benchmark: train the quickstart R3Det (configs/quickstart/r3det-oc_r18_fpn_kld_synthetic.py) on synthetic
scenes and report its AP50 on the synthetic validation scenes (DOTA metric, ``rdet.engine.evaluate``).

    .venv/bin/python benchmarks/bench_r3det_quickstart.py --iters 50                 # smoke run on CPU
    .venv/bin/python benchmarks/bench_r3det_quickstart.py --iters 2000 --device cuda
    .venv/bin/python benchmarks/bench_r3det_quickstart.py --iters 0 --speed 1024 --device cuda   # speed only

The scenes are written to ``--data`` (default ``<repo>/data/synthetic``, where the quickstart configs look)
when fewer than ``--train-images`` / ``--val-images`` are there. ``--iters`` sets ``train.max_iters`` and
scales the warm-up and the two lr steps (80% and 93% of the run, the 1x shape). Prints numbers, judges none.

``--speed SIZE`` also times inference (``model.decode``: network + box decoding, no NMS) of the published
R-50 R3Det (configs/r3det/r3det-oc_r50_fpn_1x_dota.py) against Rotated RetinaNet hbox-oc
(configs/rotated_retinanet/rotated-retinanet-hbox-oc_r50_fpn_1x_dota.py) on a SIZE x SIZE input, random
weights; MMRotate's table has 12.4 vs 15.7 fps at 1024 px.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

import torch  # noqa: E402

import rdet  # noqa: E402
from rdet.config import load_config  # noqa: E402
from rdet.data.synthetic import make_synthetic_dataset  # noqa: E402
from rdet.engine.data import build_loader  # noqa: E402
from rdet.engine.evaluate import evaluate_model  # noqa: E402
from rdet.models.build import build_model  # noqa: E402

CONFIG = ROOT / "configs/quickstart/r3det-oc_r18_fpn_kld_synthetic.py"
R3DET_R50 = ROOT / "configs/r3det/r3det-oc_r50_fpn_1x_dota.py"
RETINANET_R50 = ROOT / "configs/rotated_retinanet/rotated-retinanet-hbox-oc_r50_fpn_1x_dota.py"


def ensure_data(root: Path, n_train: int, n_val: int, size: int) -> None:
    """Write synthetic scenes unless enough are there (generation is deterministic, so a larger set extends)."""
    for split, n, seed in (("train", n_train, 0), ("val", n_val, 1)):
        have = len(list((root / split / "images").glob("*.png"))) if (root / split / "images").is_dir() else 0
        if have < n:
            print(f"writing {n} synthetic {split} scenes ({size} px) to {root / split}", flush=True)
            make_synthetic_dataset(root / split, n, size=size, seed=seed)


def device_of(name: str) -> str:
    return ("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name


@torch.no_grad()
def time_decode(config_path: Path, size: int, device: str, reps: int) -> float:
    """Seconds per image of ``model.decode`` at ``size`` px (mean over ``reps`` after 2 warm-up runs)."""
    config = load_config(config_path)
    config.model.backbone.weights = None
    model = build_model(config).to(device).eval()
    x = torch.randn(1, 3, size, size, device=device)
    for _ in range(2):
        model.decode(x)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(reps):
        model.decode(x)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / reps


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--iters", type=int, default=300, help="training iterations (0: skip training)")
    p.add_argument("--data", type=Path, default=ROOT / "data/synthetic")
    p.add_argument("--train-images", type=int, default=256)
    p.add_argument("--val-images", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=None, help="default: the config's")
    p.add_argument("--device", default="auto")
    p.add_argument("--work-dir", type=Path, default=None, help="default: a temporary folder")
    p.add_argument("--speed", type=int, default=0, metavar="SIZE", help="also time R-50 R3Det vs RetinaNet")
    p.add_argument("--speed-reps", type=int, default=10)
    args = p.parse_args(argv)
    device = device_of(args.device)

    if args.iters > 0:
        config = load_config(CONFIG)
        size = config.data.img_size[0]
        ensure_data(args.data, args.train_images, args.val_images, size)
        d = config.data
        d.train_images, d.train_labels = str(args.data / "train/images"), str(args.data / "train/labelTxt")
        d.val_images, d.val_labels = str(args.data / "val/images"), str(args.data / "val/labelTxt")
        t = config.train
        t.max_iters, t.device, t.eval_interval = args.iters, device, 0
        t.warmup_iters = max(1, min(t.warmup_iters, args.iters // 10))
        t.milestones = (int(args.iters * 0.8), int(args.iters * 0.93))  # iterations when max_iters > 0
        if args.batch_size:
            t.batch_size = args.batch_size
        with tempfile.TemporaryDirectory() as tmp:
            t.work_dir = str(args.work_dir or Path(tmp) / "run")
            start = time.perf_counter()
            res = rdet.train(config, progress=sys.stderr.isatty())
            train_s = time.perf_counter() - start
            model = rdet.load_checkpoint(res["checkpoint"], device=device)
            result = evaluate_model(model, build_loader(config, "val")[0], progress=False)
        print(
            f"R3Det quickstart ({CONFIG.name}): {res['iterations']} iterations x batch {t.batch_size} on "
            f"{device} in {train_s:.0f} s; {args.val_images} val scenes"
        )
        print(f"AP50 {result.map_at(0.5):.4f}  AP50:95 {result.mean_map:.4f}")
        print(result.table())

    if args.speed:
        r3 = time_decode(R3DET_R50, args.speed, device, args.speed_reps)
        rn = time_decode(RETINANET_R50, args.speed, device, args.speed_reps)
        print(
            f"decode at {args.speed} px on {device}: R3Det R-50 {1 / r3:.2f} img/s, Rotated RetinaNet R-50 "
            f"{1 / rn:.2f} img/s, R3Det/RetinaNet time ratio {r3 / rn:.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
