"""Train the real-data quickstart config on the bundled DOTA sample tiles and report the official DOTA metric
on a held-out real tile set (DOTA8 P0861, never trained on). Prints the numbers; no threshold.

    python benchmarks/bench_quickstart_real.py [--iters 300] [--out /tmp/rdet_real]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

import rdet  # noqa: E402
from rdet.config import load_config  # noqa: E402
from rdet.demo import CONFIG, prepare_data  # noqa: E402
from rdet.engine.data import build_loader  # noqa: E402
from rdet.engine.evaluate import evaluate_model  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iters", type=int, default=300)
    parser.add_argument("--out", default="/tmp/rdet_bench_real")
    args = parser.parse_args()
    out = Path(args.out)
    counts = prepare_data(out / "data")
    config = load_config(CONFIG, [f"train.max_iters={args.iters}", f"train.milestones=({int(args.iters * 0.8)},)"])
    config.data.train_images, config.data.train_labels = (
        str(out / "data/train/images"),
        str(out / "data/train/labelTxt"),
    )
    config.data.val_images, config.data.val_labels = str(out / "data/val/images"), str(out / "data/val/labelTxt")
    config.train.work_dir = str(out / "train")
    t0 = time.perf_counter()
    result = rdet.train(config)
    train_s = time.perf_counter() - t0
    model = rdet.load_checkpoint(result["checkpoint"])
    metric = evaluate_model(model, build_loader(config, "val")[0], iou_thrs="coco", progress=False)
    print(
        f"\n{counts['train']} training tiles, {counts['val']} held-out tiles; "
        f"{args.iters} iterations in {train_s:.0f} s "
        f"on {platform.processor() or platform.machine()}"
    )
    print(f"held-out mAP50 {100 * metric.map_at(0.5):.2f}  mAP50:95 {100 * metric.mean_map:.2f}")
    print(metric.table())
    (out / "metrics.json").write_text(json.dumps(metric.to_dict(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
