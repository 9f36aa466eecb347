"""``make demo``: the whole pipeline on the bundled real samples, on a CPU, in minutes.

1. cut the bundled DOTA samples into 512 px training tiles (DOTA8's tile P0861 is held out for evaluation);
2. train ``configs/quickstart/rotated-retinanet-rbox-le90_r18_fpn_kld-stable_dota-samples.py`` (skipped when
   ``demo_out/model.pt`` exists: delete it to retrain);
3. print the official DOTA metric on the held-out tile;
4. export the model to ONNX (exact rotated NMS in standard ONNX ops);
5. tiled inference with ONNX Runtime on the bundled 1616x1565 scene;
6. write the annotated PNG, GeoJSON, DOTA Task1 lines and JSON to ``demo_out/``.

Everything lands in ``demo_out/`` (git-ignored). Run ``python -m rdet.demo --help`` for options.
"""

from __future__ import annotations

import argparse
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rdet.demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="demo_out", help="output folder (default: ./demo_out)")
    parser.add_argument("--iters", type=int, default=None, help="training iterations (default: the config's)")
    parser.add_argument("--retrain", action="store_true", help="train even if demo_out/model.pt exists")
    args = parser.parse_args(argv)

    import rdet
    from rdet.config import load_config
    from rdet.engine.data import build_loader
    from rdet.engine.evaluate import evaluate_model
    from rdet.inference.io import open_scene
    from rdet.inference.predict import write_outputs

    t0 = time.perf_counter()
    out = Path(args.out)
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
    if args.iters is not None:
        config.train.max_iters = args.iters
    checkpoint = out / "model.pt"
    if checkpoint.is_file() and not args.retrain:
        print(f"[2/5] using the cached model {checkpoint} (delete it or pass --retrain to train again)")
    else:
        print(f"[2/5] training {config.name} for {config.train.max_iters} iterations on the CPU")
        result = rdet.train(config)
        shutil.copyfile(result["checkpoint"], checkpoint)
    model = rdet.load_checkpoint(checkpoint)

    print("[3/5] official DOTA metric (VOC07 AP, polygon IoU) on the held-out tiles")
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
        files = write_outputs(dets, scene, out, SCENE.stem)
    counts_by_class = dets.counts()
    summary = {
        "checkpoint": str(checkpoint),
        "onnx": str(onnx_path),
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
    print(f"rdet demo done in {summary['total_s']} s")
    print(f"  model:        {checkpoint}  (ONNX: {onnx_path})")
    print(
        f"  held-out AP:  mAP50 {100 * metric.map_at(0.5):.1f}  mAP50:95 {100 * metric.mean_map:.1f}"
        f"  (DOTA8 P0861 tiles; trained from scratch on a CPU)"
    )
    print(f"  scene:        {len(dets)} detections {counts_by_class}")
    print(f"  timing:       {summary['timing']}")
    for kind, path in files.items():
        print(f"  {kind + ':':<13} {path}")
    print("  next:         make serve   (Gradio app on this model)")
    print("=" * 72)
    return 0


def cli(argv: list[str]) -> int:
    """``rdet demo``."""
    return main(argv)


if __name__ == "__main__":
    sys.exit(main())
