"""Tiled inference throughput: seconds and peak memory for one 10,000 x 10,000 px scene (``rdet.predict``).

The scene is synthetic (fields, roads and ~20 rotated "vehicles" per 512-px block, seeded), written once as a
tiled TIFF with ``tifffile`` (zlib-compressed unless ``--compression none``; read window by window, as a
GeoTIFF would be) or, without tifffile, a PNG (decoded whole). ``rdet.predict`` cuts it into 1024-px windows
with 200 px overlap (12 x 12 = 144 windows for 10k px), runs ``model.predict`` on batches of windows, maps the
boxes back and merges them with rotated NMS. The timed call runs in a fresh subprocess after one warm-up
window, so the reported memory is its own:

* seconds per scene (``info.total_s``: reading + inference + merging), ms per tile of inference;
* peak RSS of the process (``ru_maxrss``: Python + torch + model + windows) and its increase during the
  scene; ``tracemalloc`` peak (numpy/Python allocations: decoded windows, batches); on CUDA
  ``torch.cuda.max_memory_allocated``.

``--scale-down K`` divides the scene side by K (the windows stay 1024 px, so about 144 / K^2 of them): the
CPU figure, with the seconds for the full scene extrapolated per tile and labelled so. Weights are random.

    .venv/bin/python benchmarks/bench_tiled.py --model retinanet-r18-narrow --scale-down 4   # CPU, minutes
    .venv/bin/python benchmarks/bench_tiled.py --model retinanet-r18 --batch 16               # GPU
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see rdet/bench/fps.py: spinning OpenMP threads on shared cores

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from rdet.bench.fps import environment  # noqa: E402
from rdet.bench.models import MODELS, build  # noqa: E402

FULL_SIDE = 10_000
BLOCK = 512  # TIFF tile and generator block


def scene_block(row: int, col: int, seed: int = 0) -> np.ndarray:
    """The ``[BLOCK, BLOCK, 3]`` uint8 RGB block at block row/column: smooth fields, a road, rotated cars."""
    rng = np.random.default_rng([seed, row, col])
    y, x = np.mgrid[0:BLOCK, 0:BLOCK].astype(np.float32)
    base = rng.uniform(60, 160, 3).astype(np.float32)
    field = base + 12 * np.sin(x * rng.uniform(0.01, 0.05) + y * rng.uniform(0.01, 0.05))[..., None]
    img = np.clip(field + rng.normal(0, 6, (BLOCK, BLOCK, 3)), 0, 255).astype(np.uint8)
    if rng.random() < 0.5:  # a road across the block
        c = int(rng.integers(64, BLOCK - 64))
        cv2.rectangle(img, (0, c - 12), (BLOCK - 1, c + 12), (90, 90, 95), -1)
    for _ in range(20):
        cx, cy = rng.uniform(0, BLOCK, 2)
        w, h, a = rng.uniform(20, 60), rng.uniform(8, 20), rng.uniform(0, 180)
        pts = cv2.boxPoints(((float(cx), float(cy)), (float(w), float(h)), float(a))).astype(np.int32)
        cv2.fillPoly(img, [pts], tuple(int(v) for v in rng.integers(0, 256, 3)))
    return img


def write_scene(path: Path, side: int, compression: str = "zlib") -> Path:
    """Write a ``side x side`` scene: tiled TIFF (tifffile, ``compression`` 'zlib' or 'none') block by block, or a
    PNG without tifffile. Reused when present."""
    try:
        import tifffile
    except ImportError:
        tifffile = None
    if compression not in ("zlib", "none"):
        raise ValueError(f"compression must be 'zlib' or 'none', got {compression!r}")
    path = path.with_name(f"{path.name}_{compression}.tif") if tifffile else path.with_suffix(".png")
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    n = math.ceil(side / BLOCK)
    tmp = path.with_name(path.stem + ".partial" + path.suffix)
    if tifffile:
        blocks = (scene_block(r, c) for r in range(n) for c in range(n))  # full blocks; tifffile crops the edge
        tifffile.imwrite(
            tmp,
            data=blocks,
            shape=(side, side, 3),
            dtype=np.uint8,
            tile=(BLOCK, BLOCK),
            photometric="rgb",
            compression=None if compression == "none" else "zlib",
        )
    else:
        img = np.concatenate([np.concatenate([scene_block(r, c) for c in range(n)], 1) for r in range(n)], 0)
        if not cv2.imwrite(str(tmp), cv2.cvtColor(img[:side, :side], cv2.COLOR_RGB2BGR)):
            raise ValueError(f"cannot write {tmp}")
    tmp.rename(path)
    return path


def measure(
    scene: str, model_name: str, tile: int, overlap: int, batch: int, device: str, score_thr: float | None
) -> dict:
    """Predict the scene once (after a one-window warm-up) in this process. Returns a JSON-able result."""
    import rdet

    dev = torch.device(device)
    model = build(MODELS[model_name], "dota", dev)
    warm = np.zeros((tile, tile, 3), np.uint8)
    rdet.predict(warm, model, tile=tile, overlap=overlap, batch=1, device=device, score_thr=score_thr, progress=False)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
    tracemalloc.start()
    t0 = time.perf_counter()
    dets = rdet.predict(
        scene, model, tile=tile, overlap=overlap, batch=batch, device=device, score_thr=score_thr, progress=False
    )
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    wall = time.perf_counter() - t0
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    info = dets.info
    out = {
        "scene": f"{info.width}x{info.height}",
        "reader": info.reader,
        "tiles": info.tiles,
        "batch": batch,
        "total_s": info.total_s,
        "wall_s": wall,
        "read_s": info.read_s,
        "infer_s": info.infer_s,
        "merge_s": info.merge_s,
        "ms_per_tile": info.ms_per_tile,
        "detections": len(dets.scores),
        "raw_detections": info.raw_detections,
        "rss_peak_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1024**3,
        "rss_before_gib": rss_before / 1024**3,
        "tracemalloc_peak_mib": traced_peak / 1024**2,
    }
    if dev.type == "cuda":
        out["cuda_peak_gib"] = torch.cuda.max_memory_allocated(dev) / 1024**3
    return out


def full_scene_tiles(tile: int, overlap: int) -> int:
    from rdet.inference.tiling import tile_windows

    return len(tile_windows(FULL_SIDE, FULL_SIDE, tile, overlap))


def cli(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(prog="bench_tiled.py", description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--model",
        default=None,
        choices=sorted(MODELS),
        help="default: retinanet-r18 on CUDA, retinanet-r18-narrow on CPU",
    )
    ap.add_argument("--scale-down", type=int, default=1, help="scene side = 10000 / K (windows stay --tile px)")
    ap.add_argument("--tile", type=int, default=1024)
    ap.add_argument("--overlap", type=int, default=200)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--score-thr", type=float, default=None, help="default: the config's test.score_thr")
    ap.add_argument(
        "--compression",
        choices=("zlib", "none"),
        default="zlib",
        help="TIFF compression (zlib: realistic, its decoding is part of 'read s')",
    )
    ap.add_argument("--device", default="auto")
    ap.add_argument(
        "--workdir",
        default=str(Path(tempfile.gettempdir()) / "rdet_bench_tiled"),
        help="where the synthetic scene is written (and reused)",
    )
    ap.add_argument("--out", default=None)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(measure(**json.loads(args.child))))
        return 0
    if args.scale_down < 1 or args.batch < 1:
        ap.error("--scale-down and --batch must be >= 1")
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    model = args.model or ("retinanet-r18" if device.startswith("cuda") else "retinanet-r18-narrow")
    side = FULL_SIDE // args.scale_down
    t0 = time.perf_counter()
    scene = write_scene(Path(args.workdir) / f"scene_{side}", side, args.compression)
    made = time.perf_counter() - t0
    env = environment(torch.device(device))
    spec = {
        "scene": str(scene),
        "model_name": model,
        "tile": args.tile,
        "overlap": args.overlap,
        "batch": args.batch,
        "device": device,
        "score_thr": args.score_thr,
    }
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)], capture_output=True, text=True
    )
    if proc.returncode != 0 or not proc.stdout.strip():
        print(f"bench_tiled: the measurement failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
        return 1
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    full = full_scene_tiles(args.tile, args.overlap)
    est = "" if args.scale_down == 1 else f"{r['total_s'] / r['tiles'] * full:.1f} (extrapolated: {full} tiles)"
    cuda_mem = f"{r['cuda_peak_gib']:.2f}" if "cuda_peak_gib" in r else "-"
    lines = [f"- {k}: {v}" for k, v in env.items()]
    lines += [
        f"- model: {MODELS[model].label} (random weights), score_thr "
        f"{'config' if args.score_thr is None else args.score_thr}",
        f"- scene: {scene.name} ({r['scene']} px, {r['reader']}; written in {made:.0f} s, not timed)"
        + (f"; SCALED DOWN {args.scale_down}x from 10000x10000" if args.scale_down > 1 else ""),
        f"- command: `.venv/bin/python benchmarks/bench_tiled.py {' '.join(argv)}`",
        "",
        "| scene | tiles | tile/overlap | batch | s/scene | s per 10k scene | ms/tile (inference) | read s "
        "| merge s | detections | peak RSS GiB (+ during scene) | tracemalloc peak MiB | CUDA peak GiB |",
        "|---|---:|---|---:|---:|---|---:|---:|---:|---:|---|---:|---:|",
        f"| {r['scene']} | {r['tiles']} | {args.tile}/{args.overlap} | {args.batch} | {r['total_s']:.2f} | "
        f"{est or format(r['total_s'], '.2f')} | {r['ms_per_tile']:.0f} | {r['read_s']:.2f} | "
        f"{r['merge_s']:.2f} | {r['detections']} | {r['rss_peak_gib']:.2f} "
        f"(+{r['rss_peak_gib'] - r['rss_before_gib']:.2f}) | {r['tracemalloc_peak_mib']:.0f} | {cuda_mem} |",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(cli())
