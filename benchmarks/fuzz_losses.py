"""Fuzz the Gaussian losses: finite loss and gradient on 1e6 random box pairs, fp32 and bf16 autocast.

The pairs mix ordinary boxes, sides from 1e-9 to 1e8 px (beyond MMRotate's [1e-7, 1e7] clamp), 1000:1
boxes, zero-sized boxes, angles of exactly +-pi/2 and up to +-2 pi, centres up to 1e7 px away, and
near-identical or identical pairs (where sqrt and log have their kinks). Every flavour of
``kld_loss``/``gwd_loss``/``kfiou_loss`` runs forward and backward; any non-finite value fails the run
(exit status 1) and prints the first offending pairs. ``tests/test_losses.py`` runs 1e5 pairs in CI.

    python benchmarks/fuzz_losses.py [--pairs 1000000] [--chunk 200000] [--seed 0] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import torch

from rdet.losses import gwd_loss, kfiou_loss, kld_loss

FLAVOURS = {
    "kld (GDLoss_v1, log1p)": lambda p, t: kld_loss(p, t),
    "kld (GDLoss_v1, sqrt)": lambda p, t: kld_loss(p, t, "sqrt"),
    "kld (GDLoss_v1, none)": lambda p, t: kld_loss(p, t, "none"),
    "kld-stable (sqrt=False)": lambda p, t: kld_loss(p, t, stable=True, sqrt=False),
    "kld-stable (sqrt=True)": lambda p, t: kld_loss(p, t, stable=True),
    "kld-stable (sqrt, fun sqrt)": lambda p, t: kld_loss(p, t, "sqrt", stable=True),
    "kld-stable (none, tau 0)": lambda p, t: kld_loss(p, t, "none", 0.0, stable=True, sqrt=False),
    "gwd (normalized, tau 0)": lambda p, t: gwd_loss(p, t, tau=0.0),
    "gwd (sqrt, unnormalized)": lambda p, t: gwd_loss(p, t, "sqrt", normalize=False),
    "gwd (GDLoss_v1, sqrt, tau 2)": lambda p, t: gwd_loss(p, t, "sqrt", 2.0, normalize=False, stable=False),
    "kfiou (ln)": lambda p, t: kfiou_loss(p * 1e-3, t * 1e-3, p, t, "ln"),
}


def fuzz_pairs(n: int, generator: torch.Generator, device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` (pred, target) pairs, Tensor[n, 5] each, drawn as described in the module docstring."""
    g = generator

    def boxes() -> torch.Tensor:
        kind = torch.randint(0, 4, (n, 1), generator=g)
        centre = (torch.rand(n, 2, generator=g) - 0.5) * torch.where(kind == 3, 2e7, 2e3)
        wh = 10 ** (torch.rand(n, 2, generator=g) * 17 - 9)
        wh = torch.where(kind == 1, torch.stack([wh[:, 0], wh[:, 0] * 1e-3], 1), wh)  # 1000:1
        wh = torch.where(torch.rand(n, 2, generator=g) < 0.02, torch.zeros_like(wh), wh)  # zero sides
        angle = (torch.rand(n, generator=g) - 0.5) * 4 * math.pi
        angle = torch.where(torch.rand(n, generator=g) < 0.1, math.pi / 2 * torch.sign(angle), angle)
        return torch.cat([centre, wh, angle[:, None]], 1)

    pred, target = boxes(), boxes()
    jitter = torch.randn(n, 5, generator=g) * torch.tensor([1e-3, 1e-3, 1e-3, 1e-3, 1e-4]) * target.abs().clamp(min=1)
    pred = torch.where(torch.rand(n, 1, generator=g) < 0.3, target + jitter, pred)
    pred = torch.where(torch.rand(n, 1, generator=g) < 0.05, target, pred)
    return pred.to(device), target.to(device)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=1_000_000)
    parser.add_argument("--chunk", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    g = torch.Generator().manual_seed(args.seed)
    modes = [
        ("fp32", torch.float32, False),
        ("bf16 autocast", torch.float32, True),
        ("bf16 inputs", torch.bfloat16, False),
    ]
    failures = 0
    start = time.perf_counter()
    done = 0
    while done < args.pairs:
        n = min(args.chunk, args.pairs - done)
        pred, target = fuzz_pairs(n, g, args.device)
        for mode, dtype, autocast in modes:
            for name, fn in FLAVOURS.items():
                leaf = pred.to(dtype).clone().requires_grad_(True)
                with torch.autocast(pred.device.type, dtype=torch.bfloat16, enabled=autocast):
                    loss = fn(leaf, target.to(dtype))
                loss.sum().backward()
                bad = ~torch.isfinite(loss) | ~torch.isfinite(leaf.grad).all(dim=1)
                if bad.any():
                    failures += int(bad.sum())
                    idx = torch.nonzero(bad)[:3, 0]
                    print(
                        f"FAIL {name} [{mode}]: {int(bad.sum())} pairs, e.g. pred={pred[idx].tolist()} "
                        f"target={target[idx].tolist()}",
                        file=sys.stderr,
                    )
        done += n
        print(
            f"{done:>9d} pairs x {len(FLAVOURS)} flavours x {len(modes)} modes, "
            f"{time.perf_counter() - start:.1f} s, failures {failures}"
        )
    print("OK: all losses and gradients finite" if failures == 0 else f"FAILED: {failures} non-finite pairs")
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
