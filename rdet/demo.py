"""``make demo``: the whole pipeline on the bundled real samples, on a CPU, in minutes.

1. cut the bundled DOTA samples into tiles (DOTA8's tile P0861 is held out for evaluation);
2. the model: a published one when its file is in the cache (``rdet zoo``; or ``--model NAME|PATH``, which
   downloads a zoo name once), else train
   ``configs/quickstart/rotated-retinanet-rbox-le90_r18_fpn_kld-stable_dota-samples.py`` from scratch on the 512 px
   tiles: the quick mode (default) runs 40 iterations of batch 2, ``--full`` the config's 300 iterations of batch 4
   (skipped when ``demo_out/model.pt`` holds a trained model: pass ``--retrain``; ``--train`` ignores the cache);
3. print the official DOTA metric on the held-out tile (AP in percent; ``metrics.json`` holds fractions);
4. export the model to ONNX (exact rotated NMS in standard ONNX ops);
5. tiled inference with ONNX Runtime on the bundled 1616x1565 scene, at the model's own tile size (512 px for the
   trained model, 1024 px with overlap 200 for a published one, as MMRotate's DOTA split);
6. write ``rdet predict``'s outputs to ``demo_out/predict/``: ``Task1_<class>.txt``, JSON, GeoJSON, PNG.

Everything lands in ``demo_out/`` (git-ignored); ``demo_out/model.pt`` is what ``make serve`` serves.
``rdet demo --help`` (or ``python -m rdet.demo --help``).
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
TILE, GAP = 512, 128  # the trained model's tiles; a published model uses its own size (1024) and overlap 200
PUBLISHED_GAP = 200
# A cached published model is used in this order (DOTA models only: the samples are DOTA images)
PREFERRED = "rotated-retinanet-rbox-le90_r50_fpn_kld-stable_1x_dota"
SOURCE_FILE = "model.source"  # next to demo_out/model.pt: 'trained', or where the weights came from


def prepare_data(out: Path, tile: int = TILE, gap: int = GAP) -> dict:
    """Cut the bundled samples into ``out/train`` (``tile`` px, overlap ``gap``) and ``out/val`` (``tile`` px, no
    overlap) tiles (idempotent for one tile size: use one ``out`` per size)."""
    from rdet.data import DOTA1_0, read_labels, remap_classes
    from rdet.data.classes import read_class_names
    from rdet.data.split import SplitConfig, split_image

    train_cfg = SplitConfig(patch_size=tile, gap=gap)
    val_cfg = SplitConfig(patch_size=tile, gap=0)  # no overlap: each held-out object is counted once
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


QUICK = {"max_iters": 40, "warmup_iters": 8, "milestones": (32,), "batch_size": 2}  # --quick (the default)


def cached_published_model() -> str | None:
    """The zoo name of a cached DOTA model (``PREFERRED`` first), or None; never downloads."""
    from rdet import zoo

    dota = [e.name for e in zoo.ENTRIES if e.dataset.startswith("DOTA")]
    for name in sorted(dota, key=lambda n: n != PREFERRED):
        if zoo.cached(name) is not None:
            return name
    return None


def choose_model(args) -> str | None:
    """What the demo runs: ``--model``, else (without ``--train``) a cached published model, else None (train)."""
    if args.model:
        return args.model
    if args.train or args.retrain:  # --retrain: train again, whatever is cached
        return None
    return cached_published_model()


def _published(name: str | None) -> str:
    from rdet import zoo

    if name is None or not zoo.is_name(name):
        return ""
    e = zoo.get(name)
    return f"published {e.dataset} mAP {e.published} (MMRotate's table; DOTA test server)"


def _train(config, args, out: Path, checkpoint: Path) -> None:
    import rdet

    mode = "full" if args.full else "quick"
    if not args.full:
        for key, value in QUICK.items():
            setattr(config.train, key, value)
    if args.iters is not None:
        config.train.max_iters = args.iters
        config.train.milestones = (max(1, int(0.8 * args.iters)),)
        config.train.warmup_iters = min(config.train.warmup_iters, max(1, args.iters // 5))
    source = out / SOURCE_FILE
    trained = checkpoint.is_file() and (not source.is_file() or source.read_text().strip() == "trained")
    if trained and not args.retrain:
        print(f"[2/5] using the model trained before, {checkpoint} (pass --retrain to train again)")
        return
    print(
        f"[2/5] training {config.name} from scratch for {config.train.max_iters} iterations "
        f"(batch {config.train.batch_size}, {mode} mode) on the CPU"
    )
    t_train = time.perf_counter()
    result = rdet.train(config)
    weights = Path(result["work_dir"]) / "model.pt"  # weights only, written at the end of training
    shutil.copyfile(weights if weights.is_file() else result["checkpoint"], checkpoint)
    source.write_text("trained\n")
    print(f"      trained in {time.perf_counter() - t_train:.0f} s")


def run(args) -> int:
    """The demo for parsed :mod:`rdet.commands.demo` arguments."""
    import rdet
    from rdet.checkpoint import save_weights
    from rdet.config import load_config
    from rdet.engine.data import build_loader
    from rdet.engine.evaluate import evaluate_model
    from rdet.inference.io import open_scene
    from rdet.inference.predict import write_outputs

    t0 = time.perf_counter()
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    checkpoint = out / "model.pt"
    given = choose_model(args)
    if given is None:
        config = load_config(CONFIG)
        model = None
        tile, gap = TILE, GAP
    else:
        print(f"[2/5] loading {given} {_published(given)}".rstrip())
        model = rdet.load_checkpoint(given)  # a zoo name is downloaded once (progress bar), then cached
        config = model.config
        tile, gap = config.data.img_size[0], PUBLISHED_GAP
    data = out / "data" if tile == TILE else out / f"data_{tile}"
    print(f"[1/5] preparing {tile} px tiles from the bundled DOTA samples in {data}")
    counts = prepare_data(data, tile, gap)
    print(f"      {counts['train']} training tiles, {counts['val']} held-out tiles (DOTA8 P0861)")
    config.data.train_images, config.data.train_labels = str(data / "train/images"), str(data / "train/labelTxt")
    config.data.val_images, config.data.val_labels = str(data / "val/images"), str(data / "val/labelTxt")
    config.train.work_dir = str(out / "train")
    config.train.keep_checkpoints = 1  # the demo needs only the final weights
    if model is None:
        mode = "full" if args.full else "quick"
        _train(config, args, out, checkpoint)
        model = rdet.load_checkpoint(checkpoint)
    else:
        mode = "published" if _published(given) else "given"
        save_weights(checkpoint, model, config)  # what `make serve` serves
        (out / SOURCE_FILE).write_text(f"{given}\n")

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

    onnx_path = export_onnx(checkpoint, out / "model.onnx", nms="onnx", imgsz=tile)

    print(f"[5/5] tiled inference with ONNX Runtime on {SCENE.name} (tile {tile}, overlap {gap})")
    dets = rdet.predict(SCENE, str(onnx_path), tile=tile, overlap=gap, backend="onnx")
    with open_scene(SCENE) as scene:
        files = write_outputs(dets, scene, out / "predict", SCENE.stem, notes=[])
    counts_by_class = dets.counts()
    summary = {
        "mode": mode,
        "model": given or "trained from scratch",
        "published": _published(given),
        "iterations": config.train.max_iters if given is None else 0,
        "checkpoint": str(checkpoint),
        "onnx": str(onnx_path),
        "ap_unit": "fraction (0-1); the printed tables show percent",
        "held_out_mAP50": metric.map_at(0.5),
        "held_out_mAP50_95": metric.mean_map,
        "scene": str(SCENE),
        "tile": tile,
        "overlap": gap,
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
    if given is None:
        how = f"trained from scratch on a CPU for {config.train.max_iters} iterations"
    else:
        how = f"{given}; {_published(given) or 'given with --model'}"
    print(
        f"  held-out AP:  mAP50 {100 * metric.map_at(0.5):.2f} %  mAP50:95 {100 * metric.mean_map:.2f} %"
        f"  (DOTA8 P0861 tiles; {how})"
    )
    found = f"{len(dets)} detections {counts_by_class}" if len(dets) else "no detection above the score threshold"
    print(f"  scene:        {found}")
    print(f"  timing:       {summary['timing']}")
    for kind, path in files.items():
        print(f"  {kind + ':':<13} {path}")
    print(f"  evaluate:     rdet eval --results {files['task1']} --labels LABELS (Task1_<class>.txt files)")
    print("  next:         make serve   (Gradio app on this model)")
    if given is None and cached_published_model() is None:
        print(f"  real detections: rdet demo --model {PREFERRED}  (downloads the published weights once)")
    print("=" * 72)
    return 0


if __name__ == "__main__":
    from rdet.commands.demo import cli

    sys.exit(cli())
