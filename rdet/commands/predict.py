"""``rdet predict``: tiled inference on images, folders of images, or scenes of any size.

    rdet predict scene.tif --model work_dirs/x/model.pt --output results/
    rdet predict DOTA/test/images --model model.onnx --output results/ --tile 1024 --overlap 200
    rdet eval --results results/ --labels DOTA/val/labelTxt          # reads the Task1 files as written

Writes into --output: Task1_<class>.txt (official DOTA layout, merged per image id: more runs into the same
folder add or replace images), and per image <id>.json, <id>.geojson (WGS84 lon/lat, georeferenced scenes with
pyproj) or <id>.pixels.geojson (pixel coordinates), and <id>.png (annotated). <id> is the file name without its
extension, whitespace replaced by '_'.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rdet.commands.common import Parser, add, add_max_pixels, doc_parts, note, positive_int, require, run_command

# Kept in step with rdet.inference.predict.BACKENDS and rdet.inference.io.SUPPORTED (tests/test_commands.py checks)
BACKENDS = ("torch", "onnx", "trt")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def parser() -> Parser:
    p = Parser("rdet predict", *doc_parts(__doc__))
    p.add_argument("images", nargs="+", metavar="IMAGE", help="PNG/JPEG/BMP/TIFF files, or folders of them")
    p.add_argument(
        "--model",
        required=True,
        help="checkpoint (.pt), published model name (rdet zoo), ONNX file (.onnx) or TensorRT engine (.engine/.plan)",
    )
    add(p, "--output", deprecated=["--out"], metavar="DIR", default=None, help="output folder (required)")
    p.add_argument("--tile", type=positive_int, default=1024, help="window size in network pixels")
    p.add_argument("--overlap", type=int, default=200, help="overlap of neighbouring windows in network pixels")
    p.add_argument("--scales", type=float, nargs="+", default=[1.0], help="resize factors, merged (e.g. 0.5 1.0)")
    p.add_argument("--batch", type=positive_int, default=8, help="windows per backend call")
    p.add_argument("--backend", choices=BACKENDS, default=None, help="default: from the model file's extension")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ...")
    p.add_argument("--score-thr", type=float, default=None, help="default: the model's test.score_thr")
    p.add_argument("--iou-thr", type=float, default=None, help="default: the model's test.iou_thr")
    p.add_argument(
        "--classes", default=None, help="comma-separated class names to keep (default: every class of the model)"
    )
    add_max_pixels(p)
    p.add_argument("--no-scores", action="store_true", help="draw boxes without score labels")
    p.add_argument("--max-png-side", type=int, default=8192, help="shrink the annotated PNG to this side (0: full)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def expand_images(items: list[str]) -> list[Path]:
    """Files as given, folders as their image files (sorted); a missing path or an empty folder is an error."""
    out: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found = sorted(q for q in path.iterdir() if q.suffix.lower() in IMAGE_SUFFIXES and q.is_file())
            if not found:
                raise ValueError(f"{path}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
            out += found
        elif path.is_file():
            out.append(path)
        else:
            raise FileNotFoundError(f"image not found: {path}")
    return out


def run(args: argparse.Namespace) -> int:
    p = parser()
    require(p, args, "--output")
    images = expand_images(args.images)
    from rdet.inference.outputs import image_id_of

    ids = [image_id_of(i) for i in images]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        same = [str(f) for f, i in zip(images, ids) if i == dupes[0]]
        raise ValueError(f"{' and '.join(same[:2])} have the same image id {dupes[0]!r}; outputs would collide")
    from rdet.inference import io
    from rdet.inference.predict import SUFFIXES, load_backend, predict, write_outputs

    backend = args.backend or next((b for b, s in SUFFIXES.items() if Path(args.model).suffix.lower() in s), "torch")
    runner = load_backend(args.model, backend, args.device, args.score_thr, args.iou_thr)
    keep = None
    if args.classes is not None:
        keep = [c.strip() for c in args.classes.split(",") if c.strip()]
        unknown = [c for c in keep if c not in runner.class_names]
        if unknown:
            raise ValueError(f"--classes: {unknown} are not classes of the model; its classes: {runner.class_names}")
    for f, i in zip(images, ids):
        if i != f.stem:
            note(p.prog, f"{f}: image id {i!r} (whitespace is not allowed in DOTA Task1 lines)")
    out = Path(args.output)
    failed = 0
    for image, image_id in zip(images, ids):
        notes: list[str] = []
        try:
            with io.open_scene(image, max_pixels=args.max_pixels) as scene:
                dets = predict(scene, runner, args.tile, args.overlap, args.scales, args.batch, progress=not args.quiet)
                if keep is not None:
                    import torch

                    wanted = torch.tensor([dets.class_names[int(k)] in keep for k in dets.labels], dtype=torch.bool)
                    dets = dets.select(wanted)
                files = write_outputs(dets, scene, out, image_id, not args.no_scores, args.max_png_side or None, notes)
        except (ValueError, FileNotFoundError) as e:  # one bad image does not stop a folder
            print(f"{p.prog}: error: {' '.join(str(e).split())}", file=sys.stderr)
            failed += 1
            continue
        for n in notes:
            note(p.prog, n)
        counts = ", ".join(f"{k} {v}" for k, v in sorted(dets.counts().items(), key=lambda kv: -kv[1]))
        print(
            f"{image}: {len(dets)} detections ({counts or 'none'}) | {dets.info.summary()} -> "
            f"{files['json'].name}, {files['geojson'].name}, {files['png'].name}"
        )
    if len(images) - failed:
        print(f"Task1_<class>.txt files in {out} hold {len(images) - failed} image(s) of this run")
    return 2 if failed else 0


def cli(argv: list[str] | None = None) -> int:
    return run_command(parser(), run, argv, {"tile=": "--tile"})
