"""Draw docs/kld_gradients.png: how the angle gradient of KLD grows with the aspect ratio, unlike smooth-L1.

The KLD paper (Yang et al., NeurIPS 2021, section 3) argues that a slight angle error matters more for a
long thin box, and that KLD's gradient with respect to the angle grows with the aspect ratio while an
ln-norm loss on the angle delta gives every box the same angle gradient. For a prediction that equals
its target except for an angle error ``d`` (sides ``w = r h``)::

    KL = 1/2 sin^2(d) (r - 1/r)^2      so      dKL/d(angle) = 1/2 sin(2d) (r - 1/r)^2 ~ r^2 / 2 * sin(2d)

The post-processed losses ``1 - 1/(tau + log1p(D))`` keep that growth for small errors and bound it for
large ones (their derivative in ``D`` decays), which is the figure's second message.

This script evaluates the gradients with autograd through rdet's losses (no formula is re-typed here)
and plots them against ``r``. Run from the repository root::

    python docs/kld_gradients.py [--out docs/kld_gradients.png] [--angle-error-deg 5]
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import torch

from rdet.losses import gwd_loss, kld_loss, smooth_l1
from rdet.plot import line_plot


def angle_gradient(loss_fn, ratios: np.ndarray, angle_error: float, h: float = 16.0) -> np.ndarray:
    """|d loss / d angle_pred| for target ``(0, 0, r h, h, 0)`` and prediction rotated by ``angle_error``."""
    r = torch.as_tensor(ratios, dtype=torch.float64)
    target = torch.stack([torch.zeros_like(r), torch.zeros_like(r), r * h, torch.full_like(r, h),
                          torch.zeros_like(r)], dim=1)
    angle = torch.full_like(r, angle_error, requires_grad=True)
    pred = torch.cat([target[:, :4], angle[:, None]], dim=1)
    loss_fn(pred, target).sum().backward()
    return angle.grad.abs().numpy()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/kld_gradients.png")
    parser.add_argument("--angle-error-deg", type=float, default=5.0)
    args = parser.parse_args(argv)
    d = math.radians(args.angle_error_deg)
    ratios = np.linspace(1.1, 20.0, 120)

    curves = {
        "KL divergence D_kl (paper)": lambda p, t: kld_loss(p, t, fun="none", tau=0.0, stable=True, sqrt=False),
        "KLD-stable loss (log1p, tau 1)": lambda p, t: kld_loss(p, t, stable=True, sqrt=False),
        "KLD loss, GDLoss_v1 (log1p, tau 1)": lambda p, t: kld_loss(p, t, stable=False),
        "GWD loss (normalized, log1p, tau 0)": lambda p, t: gwd_loss(p, t, tau=0.0),
        "smooth-L1 on angle delta (beta 0.11)": lambda p, t: smooth_l1(p[:, 4:], t[:, 4:], beta=0.11).sum(1),
        "L1 on angle delta": lambda p, t: smooth_l1(p[:, 4:], t[:, 4:], beta=0.0).sum(1),
    }
    series = {name: (ratios, angle_gradient(fn, ratios, d)) for name, fn in curves.items()}
    line_plot(series, args.out, logy=True, size=(900, 560), xlim=(1.0, 20.0), legend="lower right",
              title=f"|d loss / d angle| at a {args.angle_error_deg:g} deg angle error, vs aspect ratio",
              xlabel="aspect ratio w / h (prediction = target rotated)", ylabel="|gradient| w.r.t. angle")
    for name, (_, g) in series.items():
        print(f"{name:40s} r=1.1: {g[0]:.3g}   r=20: {g[-1]:.3g}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
