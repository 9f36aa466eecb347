"""Training throughput (images/s) and peak memory per model, beside MMRotate's "Mem (GB)" column.

One training step = forward with targets (anchor assignment + losses), backward, gradient clipping
(the config's ``grad_clip``) and an SGD step, on random images with 20 random rotated boxes each (seeded).
Data loading is excluded. Each model runs in a fresh subprocess, so its peak memory is its own:

* CUDA: ``torch.cuda.max_memory_allocated`` (GiB), what MMRotate's logs report as ``memory`` (batch 2 per
  GPU, fp32, 1024 x 1024: the published "Mem (GB)");
* CPU: the process's peak resident set size (``ru_maxrss``, GiB), which includes Python, torch and the model,
  and its increase during training.

    .venv/bin/python benchmarks/bench_train.py --models retinanet-r18 retinanet-r50 --inputs 512x512 \\
        --batch 2 --iters 3 --warmup 1 --out /tmp/train_cpu.md          # CPU figure at a small size
    .venv/bin/python benchmarks/bench_train.py --inputs dota hrsc --batch 2 8 --iters 20   # on a GPU
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see rdet/bench/fps.py: spinning OpenMP threads on shared cores

import numpy as np  # noqa: E402
import torch  # noqa: E402

from rdet.bench.fps import environment  # noqa: E402
from rdet.bench.models import DEFAULT_MODELS, MODELS, bench_config, parse_input  # noqa: E402

GIB = 1024**3


def random_targets(
    batch: int, size: tuple[int, int], num_classes: int, angle_version: str, objects: int = 20, seed: int = 0
) -> list[dict]:
    """``batch`` target dicts ``{'boxes': [objects, 5], 'labels': [objects]}``: boxes 16-128 px inside the image."""
    from rdet.boxes import regularize

    g = torch.Generator().manual_seed(seed)
    h, w = size
    out = []
    for _ in range(batch):
        bw, bh = 16 + 112 * torch.rand(objects, generator=g), 16 + 112 * torch.rand(objects, generator=g)
        cx = 64 + (w - 128) * torch.rand(objects, generator=g)
        cy = 64 + (h - 128) * torch.rand(objects, generator=g)
        a = (torch.rand(objects, generator=g) - 0.5) * math.pi
        boxes = regularize(torch.stack([cx, cy, bw, bh, a], 1), angle_version)
        out.append({"boxes": boxes, "labels": torch.randint(0, num_classes, (objects,), generator=g)})
    return out


def measure(name: str, text: str, batch: int, iters: int, warmup: int, device: str, amp: bool) -> dict:
    """Train ``iters`` timed steps (after ``warmup``) in this process. Returns a JSON-able result."""
    import rdet

    key, size = parse_input(text)
    config = bench_config(MODELS[name], key)
    if config is None:
        return {"skipped": f"{name}: no config for input {key!r}"}
    dev = torch.device(device)
    torch.manual_seed(0)
    model = rdet.build_model(config).to(dev).train()
    t = config.train
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay)
    scaler = torch.amp.GradScaler(enabled=amp and dev.type == "cuda")
    g = torch.Generator().manual_seed(0)
    raw = torch.randint(0, 256, (batch, 3, *size), generator=g, dtype=torch.uint8)
    images = model.preprocess_image(raw)  # the model's own pre-processing, outside the timed step
    targets = [
        {k: v.to(dev) for k, v in tg.items()}
        for tg in random_targets(batch, size, config.model.head.num_classes, config.model.coder.angle_version)
    ]

    def step() -> float:
        with torch.autocast(dev.type, dtype=torch.float16, enabled=amp and dev.type == "cuda"):
            losses = model(images, targets, normalized=True)
        loss = sum(losses.values())
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if t.grad_clip:
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(params, t.grad_clip)
        scaler.step(opt)
        scaler.update()
        return float(loss.detach())

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    for _ in range(warmup):
        step()
    if dev.type == "cuda":
        sync()
        torch.cuda.reset_peak_memory_stats(dev)
    times, loss = [], float("nan")
    for _ in range(iters):
        sync()
        t0 = time.perf_counter()
        loss = step()
        sync()
        times.append(time.perf_counter() - t0)
    if not math.isfinite(loss):
        raise ValueError(f"{name}: training loss is {loss} (the benchmark measures a broken step)")
    rss_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    out = {
        "model": MODELS[name].label,
        "input": f"{size[1]}x{size[0]}",
        "batch": batch,
        "precision": "amp fp16" if amp and dev.type == "cuda" else "fp32",
        "iters": iters,
        "median_s": float(np.median(times)),
        "p90_s": float(np.percentile(times, 90)),
        "published_mem": MODELS[name].published_mem.get(key, "") if text == key else "",
    }
    if dev.type == "cuda":
        out["mem_gib"], out["mem_kind"] = torch.cuda.max_memory_allocated(dev) / GIB, "max_memory_allocated"
    else:
        out["mem_gib"], out["mem_kind"] = rss_peak / GIB, f"peak RSS (+{(rss_peak - rss_before) / GIB:.2f} in training)"
    return out


def markdown(results: list[dict]) -> str:
    lines = [
        "| model | input | batch | precision | iters | median s/iter | p90 s/iter | images/s | peak memory GiB "
        "| memory measured as | published Mem (GB), 2080 Ti, batch 2, 1024 px |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|---|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['model']} | {r['input']} | {r['batch']} | {r['precision']} | {r['iters']} | "
            f"{r['median_s']:.2f} | {r['p90_s']:.2f} | {r['batch'] / r['median_s']:.3g} | {r['mem_gib']:.2f} | "
            f"{r['mem_kind']} | {r['published_mem'] or '-'} |"
        )
    return "\n".join(lines)


def cli(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(prog="bench_train.py", description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--models",
        nargs="+",
        default=list(DEFAULT_MODELS),
        choices=sorted(MODELS),
        metavar="MODEL",
        help=f"{', '.join(sorted(MODELS))}",
    )
    ap.add_argument("--inputs", nargs="+", default=["dota", "hrsc"], help="dota, hrsc or WIDTHxHEIGHT")
    ap.add_argument("--batch", nargs="+", type=int, default=[2])
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--amp", action="store_true", help="fp16 autocast + GradScaler on CUDA (published: fp32)")
    ap.add_argument("--out", default=None)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)  # one measurement, JSON on the last line
    args = ap.parse_args(argv)
    if args.child:
        spec = json.loads(args.child)
        print(json.dumps(measure(**spec)))
        return 0
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    if args.iters < 1 or args.warmup < 0:
        ap.error("--iters must be >= 1 and --warmup >= 0")
    for text in args.inputs:
        try:
            parse_input(text)
        except ValueError as e:
            ap.error(str(e))
    env = environment(torch.device(device))
    results, problems = [], []
    for name in args.models:
        for text in args.inputs:
            for batch in args.batch:
                spec = {
                    "name": name,
                    "text": text,
                    "batch": batch,
                    "iters": args.iters,
                    "warmup": args.warmup,
                    "device": device,
                    "amp": args.amp,
                }
                t0 = time.perf_counter()
                proc = subprocess.run(
                    [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)],
                    capture_output=True,
                    text=True,
                )
                last = proc.stdout.strip().splitlines()[-1:] if proc.stdout.strip() else []
                if proc.returncode != 0 or not last:
                    problems.append(f"{name} {text} b{batch}: failed: {proc.stderr.strip()[-500:]}")
                    continue
                res = json.loads(last[0])
                if "skipped" in res:
                    problems.append(res["skipped"])
                    continue
                results.append(res)
                print(
                    f"  {name} {text} b{batch}: {res['median_s']:.2f} s/iter, {res['mem_gib']:.2f} GiB "
                    f"({time.perf_counter() - t0:.0f} s)",
                    file=sys.stderr,
                    flush=True,
                )
    head = "\n".join(f"- {k}: {v}" for k, v in env.items())
    head += f"\n- iterations: {args.warmup} warm-up + {args.iters} timed, SGD, 20 random boxes per image"
    head += f"\n- command: `.venv/bin/python benchmarks/bench_train.py {' '.join(argv)}`"
    text = head + "\n\n" + markdown(results) + "\n"
    if problems:
        text += "\nSkipped or failed:\n" + "\n".join(f"- {p}" for p in problems) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 1 if any("failed" in p for p in problems) else 0


if __name__ == "__main__":
    sys.exit(cli())
