"""``make demo``: the whole pipeline on the bundled real samples, on a CPU, in minutes.

1. cut the bundled DOTA samples into 512 px training tiles (DOTA8's tile P0861 is held out for evaluation);
2. train ``configs/quickstart/rotated-retinanet-rbox-le90_r18_fpn_kld-stable_dota-samples.py`` from scratch:
   the quick mode (default) runs 60 iterations of batch 2, ``--full`` the config's 300 iterations of batch 4
   (skipped when ``demo_out/model.pt`` exists: delete it or pass ``--retrain``);
3. print the official DOTA metric on the held-out tile (AP in percent; ``metrics.json`` holds fractions);
4. export the model to ONNX (exact rotated NMS in standard ONNX ops);
5. tiled inference with ONNX Runtime on the bundled 1616x1565 scene;
6. write ``rdet predict``'s outputs to ``demo_out/predict/``: ``Task1_<class>.txt``, JSON, GeoJSON, PNG.

Everything lands in ``demo_out/`` (git-ignored). ``rdet demo --help`` (or ``python -m rdet.demo --help``).
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

from rdet.resources import configs_dir, samples_dir

SAMPLES = samples_dir()
CONFIG = configs_dir() / "quickstart" / "rotated-retinanet-rbox-le90_r18_fpn_kld-stable_dota-samples.py"
SCENE = SAMPLES / "scenes" / "dota_demo.jpg"
TILE, GAP = 512, 128


def prepare_data(out: Path) -> dict:
    """Cut the bundled samples into ``out/train`` and ``out/val`` 512 px tiles (idempotent)."""
    from rdet.data import DOTA1_0, read_labels, remap_classes
    from rdet.data.classes import read_class_names
    from rdet.data.split import SplitConfig, split_image

    train_cfg = SplitConfig(patch_size=TILE, gap=GAP)
    val_cfg = SplitConfig(patch_size=TILE, gap=0)  # no overlap: each held-out object is counted once
    dota8 = SAMPLES / "dota8"
    names8 = read_class_names(str(dota8 / "dota8.yaml"))
    sources = [
        (SAMPLES / "dota/images" / f"{s}.png", read_labels(SAMPLES / "dota/labelTxt" / f"{s}.txt", classes="dota1.0"))
        for s in ("P0706", "P1888")
    ]
    for label in sorted((dota8 / "labels/train").glob("*.txt")):
        image = dota8 / "images/train" / f"{label.stem}.jpg"
        ann = remap_classes(read_labels(label, format="yolo-obb", classes=names8, image_path=image), list(DOTA1_0))
        sources.append((image, ann))
    counts = {"train": 0, "val": 0}
    for image, ann in sources:
        split = "val" if image.stem.startswith("P0861") else "train"
        names, _ = split_image(image, ann, out / split, val_cfg if split == "val" else train_cfg, resume=True)
        counts[split] += len(names)
    return counts


QUICK = {"max_iters": 60, "warmup_iters": 10, "milestones": (50,), "batch_size": 2}  # --quick (the default)


def run(args) -> int:
    """The demo for parsed :mod:`rdet.commands.demo` arguments."""
    import rdet
    from rdet.config import load_config
    from rdet.engine.data import build_loader
    from rdet.engine.evaluate import evaluate_model
    from rdet.inference.io import open_scene
    from rdet.inference.predict import write_outputs

    t0 = time.perf_counter()
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    print(f"[1/5] preparing 512 px tiles from the bundled DOTA samples in {out / 'data'}")
    counts = prepare_data(out / "data")
    print(f"      {counts['train']} training tiles, {counts['val']} held-out tiles (DOTA8 P0861)")

    config = load_config(CONFIG)
    config.data.train_images, config.data.train_labels = (
        str(out / "data/train/images"),
        str(out / "data/train/labelTxt"),
    )
    config.data.val_images, config.data.val_labels = str(out / "data/val/images"), str(out / "data/val/labelTxt")
    config.train.work_dir = str(out / "train")
    if hasattr(config.train, "keep_checkpoints"):  # CONTRACTS.md item 3 (arch): keep only the last epoch file
        config.train.keep_checkpoints = 1
    mode = "full" if args.full else "quick"
    if not args.full:
        for key, value in QUICK.items():
            setattr(config.train, key, value)
    if args.iters is not None:
        config.train.max_iters = args.iters
        config.train.milestones = (max(1, int(0.8 * args.iters)),)
        config.train.warmup_iters = min(config.train.warmup_iters, max(1, args.iters // 5))
    checkpoint = out / "model.pt"
    if checkpoint.is_file() and not args.retrain:
        print(f"[2/5] using the cached model {checkpoint} (delete it or pass --retrain to train again)")
    else:
        print(
            f"[2/5] training {config.name} from scratch for {config.train.max_iters} iterations "
            f"(batch {config.train.batch_size}, {mode} mode) on the CPU"
        )
        t_train = time.perf_counter()
        result = rdet.train(config)
        weights = Path(result["work_dir"]) / "model.pt"  # weights only, written at the end of training
        shutil.copyfile(weights if weights.is_file() else result["checkpoint"], checkpoint)
        print(f"      trained in {time.perf_counter() - t_train:.0f} s")
    model = rdet.load_checkpoint(checkpoint)

    print("[3/5] official DOTA metric (VOC07 AP, polygon IoU) on the held-out tiles; AP in percent")
    metric = evaluate_model(model, build_loader(config, "val")[0], iou_thrs="coco", progress=False)
    present = [c for c, n in enumerate(metric.num_gt) if n > 0]
    print(
        "\n".join(
            line
            for line in metric.table().splitlines()
            if not line.startswith("| ")
            or any(f"| {metric.class_names[c]} |" in line for c in present)
            or "class" in line
            or "mAP" in line
        )
    )
    metric.to_json(out / "metrics.json")

    print("[4/5] exporting to ONNX (exact rotated NMS in standard ONNX ops)")
    from rdet.export.onnx_export import export_onnx

    onnx_path = export_onnx(checkpoint, out / "model.onnx", nms="onnx", imgsz=TILE)

    print(f"[5/5] tiled inference with ONNX Runtime on {SCENE.name} (tile {TILE}, overlap {GAP})")
    dets = rdet.predict(SCENE, str(onnx_path), tile=TILE, overlap=GAP, backend="onnx")
    with open_scene(SCENE) as scene:
        files = write_outputs(dets, scene, out / "predict", SCENE.stem, notes=[])
    counts_by_class = dets.counts()
    summary = {
        "mode": mode,
        "iterations": config.train.max_iters,
        "checkpoint": str(checkpoint),
        "onnx": str(onnx_path),
        "ap_unit": "fraction (0-1); the printed tables show percent",
        "held_out_mAP50": metric.map_at(0.5),
        "held_out_mAP50_95": metric.mean_map,
        "scene": str(SCENE),
        "detections": len(dets),
        "per_class": counts_by_class,
        "timing": dets.info.summary() if dets.info else "",
        "outputs": {k: str(v) for k, v in files.items()},
        "total_s": round(time.perf_counter() - t0, 1),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print("\n" + "=" * 72)
    print(f"rdet demo ({mode} mode) done in {summary['total_s']} s")
    print(f"  model:        {checkpoint}  (ONNX: {onnx_path})")
    print(
        f"  held-out AP:  mAP50 {100 * metric.map_at(0.5):.2f} %  mAP50:95 {100 * metric.mean_map:.2f} %"
        f"  (DOTA8 P0861 tiles; trained from scratch on a CPU for {config.train.max_iters} iterations)"
    )
    found = f"{len(dets)} detections {counts_by_class}" if len(dets) else "no detection above the score threshold"
    print(f"  scene:        {found}")
    print(f"  timing:       {summary['timing']}")
    for kind, path in files.items():
        print(f"  {kind + ':':<13} {path}")
    print(f"  evaluate:     rdet eval --results {files['task1']} --labels LABELS (Task1_<class>.txt files)")
    print("  next:         make serve   (Gradio app on this model)")
    print("=" * 72)
    return 0


if __name__ == "__main__":
    from rdet.commands.demo import cli

    sys.exit(cli())
