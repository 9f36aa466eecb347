"""Decompression bombs (issue 18.1): peak memory and time of opening a 2.6 MB PNG that declares 30000 x 30000 px.

Writes the bomb (an RGB PNG of zeros, ~2.6 MB on disk, 2.7 GB decoded), then opens it in a fresh process with
``rdet.inference.io.open_scene`` and reports that process's peak RSS and wall time. ``--before DIR`` also runs
the same call with the rdet package found in DIR (a checkout of the code before the pixel budget, whose
``open_scene`` decodes the file whole) -- that run needs ~6 GB of free memory.

    python -m benchmarks.bench_bombs [--side 30000] [--before /path/to/old/checkout]
"""

from __future__ import annotations

import argparse
import os
import struct
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

CHILD = r"""
import resource, sys, time
t = time.perf_counter()
from rdet.inference import io
try:
    s = io.open_scene(sys.argv[1])
    result = f"opened {s.width} x {s.height} ({s.reader})"
except Exception as e:
    result = f"{type(e).__name__}: {str(e)[:110]}"
print(f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}|{time.perf_counter() - t:.2f}|{result}")
"""


def write_bomb(path: Path, side: int) -> None:
    """An RGB PNG of zeros, ``side x side``, compressed row by row (never held in memory)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    z = zlib.compressobj(9)
    row = b"\0" * (side * 3 + 1)
    parts = [z.compress(row) for _ in range(side)] + [z.flush()]
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)))
        f.write(chunk(b"IDAT", b"".join(parts)))
        f.write(chunk(b"IEND", b""))


def measure(path: Path, pythonpath: str | None) -> str:
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True, env=env, cwd=pythonpath or None
    )
    line = (out.stdout.strip().splitlines() or [f"0|0|failed: {out.stderr.strip()[-200:]}"])[-1]
    rss, secs, result = line.split("|", 2)
    return f"| {int(rss):,} MB | {secs} s | {result} |"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--side", type=int, default=30000)
    p.add_argument("--before", default=None, help="a checkout of rdet before the pixel budget")
    a = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as d:
        bomb = Path(d) / "bomb.png"
        write_bomb(bomb, a.side)
        print(f"bomb: {bomb.stat().st_size / 1e6:.1f} MB on disk, {a.side} x {a.side} px declared\n")
        print("| code | peak RSS | time | result |")
        print("|---|---|---|---|")
        if a.before:
            print("| before (" + a.before + ") " + measure(bomb, a.before))
        print("| this checkout " + measure(bomb, None))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
