"""Gaussian-distribution regression losses for rotated boxes: KLD, KLD-stable, GWD and KFIoU.

A box ``(cx, cy, w, h, angle)`` (the convention of :mod:`rdet.boxes`) becomes the 2-D Gaussian
``mu = (cx, cy)``, ``Sigma = R(angle) diag(w^2/4, h^2/4) R(angle)^T``; the losses compare the two
Gaussians of a predicted and a target box. Below ``a, b`` are the predicted half sides ``w/2, h/2``,
``c, e`` the target's, ``d = angle_p - angle_t``, ``delta = mu_p - mu_t``. As in MMRotate, ``w`` and
``h`` are first clamped to ``[1e-7, 1e7]`` (zero gradient outside that range).

Two flavours (``stable``), each reproducing one MMRotate loss
-------------------------------------------------------------
``stable=False`` -- MMRotate ``GDLoss_v1`` (``mmrotate/models/losses/gaussian_dist_loss_v1.py``), used by
the ``*_kld_*`` configs; this is the loss of the KLD paper (Yang et al., NeurIPS 2021)::

    D    = max(2 * KL(N_p || N_t), 1e-6)        # KL(N_p||N_t) of the paper, Sigma_t^-1 inside
    loss = 1 - 1 / (tau + f(D))                 # f = log1p or sqrt; applied for every tau

``stable=True`` -- MMRotate ``GDLoss`` (``mmrotate/models/losses/gaussian_dist_loss.py``, after PR #206),
used by the ``*kld-stable*`` configs (which pass ``fun='log1p', tau=1, sqrt=False``)::

    D    = KL(N_t || N_p)                       # other direction, Sigma_p^-1 inside, no factor 2
    D    = sqrt(max(D, 1e-7)) if sqrt else D    # sqrt defaults to True, as GDLoss's kld_loss
    loss = 1 - 1 / (tau + f(D)) if tau >= 1 else f(D)
                                                # f = log1p, sqrt(max(., 1e-7)) or identity

(MMRotate PR #183, "Stable KLD", only added those configs; the code is ``GDLoss``'s, whose clamps
were last changed by PR #206.) So "stable" changes five things: the KL direction (the centre offset
is measured in the *predicted* Gaussian's metric), the factor 1/2, the clamp (1e-7 and only before a
sqrt, instead of 1e-6 always), the optional ``sqrt`` of the divergence, and the ``tau`` rule
(``tau < 1`` means no ``1 - 1/(tau+.)``).
``alpha`` divides the centre term (``delta^T Sigma^-1 delta / alpha^2``) in both flavours.

Normalisation quirk of ``GDLoss_v1``: it ignores ``avg_factor`` and returns one value per positive, which
MMEngine then averages per FPN level and sums over the levels; ``LossConfig.reduction='level_means'``
reproduces that (the ``*_kld_*`` configs set it), ``'num_pos'`` divides by the positive count like ``GDLoss``
(:mod:`rdet.losses.regression`).

GWD (Yang et al., ICML 2021), squared 2-Wasserstein distance ``W^2 = |delta|^2 + alpha^2 * B`` with
``B = tr(S_p) + tr(S_t) - 2 tr((S_p^1/2 S_t S_p^1/2)^1/2)``:

* ``stable=True`` (default; ``GDLoss(loss_type='gwd')``, used by every published GWD config)::

      t = max(abce, sqrt(1e-7))                 # = sqrt(clamp(det S_p det S_t, 1e-7)), replaces abce in B
      D = sqrt(max(W^2, 1e-7)) [/ (2 t^(1/4)) if normalize];  loss as the stable KLD rule.
  Note that ``GDLoss``'s *module* default is ``tau=0``, so the published GWD configs compute
  ``log1p(D)``: pass ``tau=0`` to reproduce them.
* ``stable=False`` (``GDLoss_v1(loss_type='gwd')``, the paper's form): ``D = max(W^2, 1e-6)``,
  ``loss = 1 - 1/(tau + f(D))``. ``normalize=True`` is rejected: v1 only normalises in its
  ``fun=''`` branch, which is ``stable=True, fun='log1p', tau=0`` up to clamps.

KFIoU (Yang et al., ICLR 2023) follows MMRotate ``KFLoss``: smooth-L1 on the centre deltas plus
``1 - KFIoU``, ``-ln(KFIoU + eps)`` or ``exp(1 - KFIoU) - 1``; KFIoU is clamped to ``[0, 1]`` (deviation:
MMRotate's ``det`` clamp makes it leave that range, and ``-ln`` NaN, for boxes under ~1e-3 px^2).

How the formulas are evaluated (same math, not the same rounding)
----------------------------------------------------------------
MMRotate builds the 2x2 matrices and takes ``det``/``inverse``; in fp32 that loses all precision for
long thin boxes (``det`` of a 1000:1 box cancels to garbage or a negative number, whose ``log`` is NaN).
Here every quantity is written in closed form with only non-negative terms, e.g.::

    2 KL(N_p||N_t) = (u/c)^2 + (v/e)^2                       # (u, v) = R_t^T delta
                   + cos^2 d [g(a^2/c^2) + g(b^2/e^2)] + sin^2 d [g(a^2/e^2) + g(b^2/c^2)],
    g(x) = x - 1 - ln x >= 0   (computed as expm1(l) - l with l = ln x)

    B = (cos^2 d [(a-c)^2+(b-e)^2][(a+c)^2+(b+e)^2] + sin^2 d [(a-e)^2+(b-c)^2][(a+e)^2+(b+c)^2])
        / (a^2+b^2+c^2+e^2 + 2 sqrt(tr(S_p S_t) + 2abce))

which equal MMRotate's expressions exactly in real arithmetic (tests compare against a float64 matrix
transcription) and stay finite for degenerate boxes. Deviations from MMRotate, all documented:

* ``stable=True, sqrt=False``: ``D`` is clamped at 0 (MMRotate: unclamped). It only differs where
  rounding makes the divergence negative, and it keeps ``loss >= 0``.
* Each axis of the whitened centre offset (KLD) and of the centre offset in pixels (GWD) is capped at ``1e15``
  so that its square cannot overflow fp32 (GWD returned ``inf`` for offsets >= 1e20 px); only absurd inputs
  reach it.
* ``fun='none'`` for ``stable=False``: ``GDLoss_v1`` silently maps unknown ``fun`` values to ``log1p``;
  here ``'none'`` means the identity and anything else is an error. ``alpha`` for ``stable=False``
  is an extension (``GDLoss_v1`` has none; ``alpha=1`` reproduces it).

All losses compute in float32 even under autocast (fp16/bf16 inputs are upcast; float64 stays float64)
and return per-box values without weighting or reduction (the table in
:mod:`rdet.losses.regression` weights and reduces).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

VALID_FUNS = ("log1p", "sqrt", "none")
WH_MIN, WH_MAX = 1e-7, 1e7  # MMRotate xy_wh_r_2_xy_sigma clamps w and h to this range
_OFFSET_CAP = 1e15  # whitened offset per axis; its square (1e30) stays far from fp32 max


# --------------------------------------------------------------------------- input handling


def _check_boxes(x: Tensor, name: str) -> None:
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim == 0 or x.shape[-1] != 5:
        raise ValueError(f"{name} must have shape [N, 5] (cx, cy, w, h, angle), got {list(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got {x.dtype}")


def _check_pair(pred: Tensor, target: Tensor, pred_name: str = "pred", target_name: str = "target") -> None:
    _check_boxes(pred, pred_name)
    _check_boxes(target, target_name)
    if pred.shape != target.shape:
        raise ValueError(
            f"{target_name} has shape {list(target.shape)}, which does not match {pred_name} shape {list(pred.shape)}"
        )


def _check_fun(fun: str) -> None:
    if fun not in VALID_FUNS:
        raise ValueError(f"fun must be one of {', '.join(repr(f) for f in VALID_FUNS)}; got {fun!r}")


def _check_scalars(tau: float, alpha: float) -> None:
    if not (tau >= 0 and math.isfinite(tau)):
        raise ValueError(f"tau must be a finite number >= 0, got {tau}")
    if not (alpha > 0 and math.isfinite(alpha)):
        raise ValueError(f"alpha must be a finite number > 0, got {alpha}")


def _upcast(x: Tensor) -> Tensor:
    """fp16/bf16 -> fp32 (the divergences overflow or cancel in half precision); fp32/fp64 unchanged."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def _no_autocast(x: Tensor):
    return torch.autocast(device_type=x.device.type, enabled=False)


def _split(boxes: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """(cx, cy, half width, half height, angle), sides clamped as MMRotate does."""
    wh = boxes[..., 2:4].clamp(min=WH_MIN, max=WH_MAX) * 0.5
    return boxes[..., 0], boxes[..., 1], wh[..., 0], wh[..., 1], boxes[..., 4]


# --------------------------------------------------------------------------- Gaussian conversion


def xywha_to_gaussian(boxes: Tensor) -> tuple[Tensor, Tensor]:
    """Convert rotated boxes to 2-D Gaussians.

    Args:
        boxes (Tensor[..., 5]): ``(cx, cy, w, h, angle)`` in the :mod:`rdet.boxes` convention.

    Returns:
        mu (Tensor[..., 2]): the centres.
        sigma (Tensor[..., 2, 2]): ``R diag(w^2/4, h^2/4) R^T`` with ``R`` the rotation by ``angle``;
        ``w, h`` clamped to ``[1e-7, 1e7]`` as MMRotate's ``xy_wh_r_2_xy_sigma``. Computed in at least
        float32. For losses use the closed forms of this module rather than ``det``/``inverse`` of
        ``sigma`` (see the module docstring).
    """
    _check_boxes(boxes, "boxes")
    boxes = _upcast(boxes)
    with _no_autocast(boxes):
        cx, cy, a, b, t = _split(boxes)
        cos, sin = torch.cos(t), torch.sin(t)
        a2, b2 = a * a, b * b
        sxx = a2 * cos * cos + b2 * sin * sin
        syy = a2 * sin * sin + b2 * cos * cos
        sxy = (a2 - b2) * cos * sin
        mu = torch.stack((cx, cy), dim=-1)
        sigma = torch.stack((sxx, sxy, sxy, syy), dim=-1).unflatten(-1, (2, 2))
    return mu, sigma


# --------------------------------------------------------------------------- closed forms


def _g(log_ratio: Tensor) -> Tensor:
    """``x - 1 - ln x`` for ``x = exp(log_ratio)``: >= 0, zero only at x = 1, no cancellation in ln."""
    return torch.expm1(log_ratio) - log_ratio


def _kl_divergence(p: Tensor, q: Tensor, alpha: float) -> Tensor:
    """``KL(N_p || N_q)`` of the Gaussians of boxes ``p``, ``q`` (Tensor[..., 5]), centre term / alpha^2.

    ``2 KL = delta^T S_q^-1 delta / alpha^2 + tr(S_q^-1 S_p) - 2 + ln(det S_q / det S_p)``, written as a
    sum of non-negative terms (module docstring).
    """
    px, py, pa, pb, pt = _split(p)
    qx, qy, qa, qb, qt = _split(q)
    dx, dy = px - qx, py - qy
    cos_q, sin_q = torch.cos(qt), torch.sin(qt)
    # centre offset in q's principal axes, whitened by q's standard deviations
    u = ((cos_q * dx + sin_q * dy) / qa).clamp(-_OFFSET_CAP, _OFFSET_CAP)
    v = ((cos_q * dy - sin_q * dx) / qb).clamp(-_OFFSET_CAP, _OFFSET_CAP)
    centre = (u * u + v * v) / (alpha * alpha)

    d = pt - qt
    cos2, sin2 = torch.cos(d) ** 2, torch.sin(d) ** 2
    lpa, lpb, lqa, lqb = torch.log(pa), torch.log(pb), torch.log(qa), torch.log(qb)
    shape = cos2 * (_g(2 * (lpa - lqa)) + _g(2 * (lpb - lqb))) + sin2 * (_g(2 * (lpa - lqb)) + _g(2 * (lpb - lqa)))
    return 0.5 * (centre + shape)


def _postprocess(distance: Tensor, fun: str, tau: float, stable: bool) -> Tensor:
    if fun == "log1p":
        f = torch.log1p(distance)
    elif fun == "sqrt":
        # GDLoss clamps before this sqrt (PR #206); GDLoss_v1's distance is already >= 1e-6
        f = torch.sqrt(distance.clamp(min=1e-7)) if stable else torch.sqrt(distance)
    else:
        f = distance
    if stable and tau < 1.0:
        return f
    return 1.0 - 1.0 / (tau + f)


def kld_loss(
    pred: Tensor,
    target: Tensor,
    fun: str = "log1p",
    tau: float = 1.0,
    alpha: float = 1.0,
    stable: bool = False,
    sqrt: bool | None = None,
) -> Tensor:
    """Kullback-Leibler divergence loss between the Gaussians of rotated boxes (KLD paper).

    Args:
        pred (Tensor[N, 5]): predicted boxes (decoded), ``(cx, cy, w, h, angle)``; any leading dims.
        target (Tensor[N, 5]): target boxes, same shape.
        fun: ``'log1p'``, ``'sqrt'`` or ``'none'``: the function applied to the divergence.
        tau: the ``1 - 1/(tau + f(D))`` constant (``>= 0``; see the flavours for ``tau < 1``).
        alpha: the centre term is divided by ``alpha^2``.
        stable: ``False``: MMRotate ``GDLoss_v1`` (``D = max(2 KL(N_p||N_t), 1e-6)``);
            ``True``: MMRotate ``GDLoss`` (``D = KL(N_t||N_p)``), see the module docstring.
        sqrt: only for ``stable=True``: take ``sqrt(max(D, 1e-7))`` before ``f``. ``None`` means
            ``True`` for ``stable=True`` (GDLoss's default; the kld-stable configs pass ``False``).

    Returns:
        Tensor[N]: per-box loss, float32 (float64 for float64 inputs).
    """
    _check_pair(pred, target)
    _check_fun(fun)
    _check_scalars(tau, alpha)
    if sqrt is None:
        sqrt = stable
    if sqrt and not stable:
        raise ValueError(
            "sqrt=True needs stable=True: GDLoss_v1 (stable=False) never takes a square root of the divergence"
        )
    pred, target = _upcast(pred), _upcast(target)
    with _no_autocast(pred):
        if stable:
            distance = _kl_divergence(target, pred, alpha)
            distance = distance.clamp(min=1e-7).sqrt() if sqrt else distance.clamp(min=0.0)
        else:
            distance = (2.0 * _kl_divergence(pred, target, alpha)).clamp(min=1e-6)
        return _postprocess(distance, fun, tau, stable)


def gwd_loss(
    pred: Tensor,
    target: Tensor,
    fun: str = "log1p",
    tau: float = 1.0,
    alpha: float = 1.0,
    normalize: bool = True,
    stable: bool = True,
) -> Tensor:
    """Gaussian Wasserstein distance loss between rotated boxes (GWD paper).

    Args:
        pred (Tensor[N, 5]): predicted boxes (decoded); any leading dims.
        target (Tensor[N, 5]): target boxes, same shape.
        fun: ``'log1p'``, ``'sqrt'`` or ``'none'``.
        tau: ``1 - 1/(tau + f(D))`` constant; for ``stable=True`` and ``tau < 1`` the loss is ``f(D)``
            (the published GWD configs use MMRotate's module default ``tau=0``).
        alpha: weight of the shape term: ``W^2 = |delta|^2 + alpha^2 B``.
        normalize: divide the distance by ``2 (abce)^(1/4)`` (scale invariance); ``stable=True`` only.
        stable: ``True``: MMRotate ``GDLoss(loss_type='gwd')``; ``False``: ``GDLoss_v1`` (module docstring).

    Returns:
        Tensor[N]: per-box loss.
    """
    _check_pair(pred, target)
    _check_fun(fun)
    _check_scalars(tau, alpha)
    if normalize and not stable:
        raise ValueError(
            "normalize=True needs stable=True: GDLoss_v1's GWD has no normalisation "
            "(its fun='' branch equals stable=True, fun='log1p', tau=0)"
        )
    pred, target = _upcast(pred), _upcast(target)
    with _no_autocast(pred):
        px, py, a, b, pt = _split(pred)
        tx, ty, c, e, tt = _split(target)
        # each axis of the offset capped as KLD's whitened offset: its square cannot overflow fp32 (1e20 px -> inf)
        dx = (px - tx).clamp(-_OFFSET_CAP, _OFFSET_CAP)
        dy = (py - ty).clamp(-_OFFSET_CAP, _OFFSET_CAP)
        centre = dx * dx + dy * dy
        d = pt - tt
        cos2, sin2 = torch.cos(d) ** 2, torch.sin(d) ** 2
        abce = a * b * c * e
        tr_pt = cos2 * (a * a * c * c + b * b * e * e) + sin2 * (a * a * e * e + b * b * c * c)
        # (tr S_p + tr S_t)^2 - 4 tr(S_p S_t) - 8 abce, factored into non-negative products
        n0 = cos2 * ((a - c) ** 2 + (b - e) ** 2) * ((a + c) ** 2 + (b + e) ** 2) + sin2 * (
            (a - e) ** 2 + (b - c) ** 2
        ) * ((a + e) ** 2 + (b + c) ** 2)
        t = abce.clamp(min=math.sqrt(1e-7)) if stable else abce
        # B = trS_p + trS_t - 2 sqrt(tr(S_p S_t) + 2t), rationalised: ((..)^2 - 4(..)) / (.. + 2 sqrt(..))
        shape = (n0 - 8.0 * (t - abce)) / (a * a + b * b + c * c + e * e + 2.0 * torch.sqrt(tr_pt + 2.0 * t))
        w2 = centre + alpha * alpha * shape
        if stable:
            distance = w2.clamp(min=1e-7).sqrt()
            if normalize:
                distance = distance / (2.0 * t.sqrt().sqrt())
        else:
            distance = w2.clamp(min=1e-6)
        return _postprocess(distance, fun, tau, stable)


VALID_KFIOU_FUNS = ("none", "ln", "exp")


def kfiou_loss(
    pred_deltas: Tensor,
    target_deltas: Tensor,
    pred_boxes: Tensor,
    target_boxes: Tensor,
    fun: str = "none",
    beta: float = 1.0 / 9.0,
    eps: float = 1e-6,
) -> Tensor:
    """Kalman-filter IoU loss (KFIoU paper), as MMRotate ``KFLoss``.

    ``KFIoU = V(S) / (V(S_p) + V(S_t) - V(S))`` with the Kalman product ``S = S_p (S_p + S_t)^-1 S_t``
    and ``V(S) = 4 sqrt(max(det S, eps))``; in closed form ``det S = (abce)^2 / det(S_p + S_t)`` and
    ``det(S_p + S_t) = a^2 b^2 + c^2 e^2 + cos^2 d (a^2 e^2 + b^2 c^2) + sin^2 d (a^2 c^2 + b^2 e^2)``.

    Args:
        pred_deltas (Tensor[N, 5]): encoded predictions; only the centre deltas ``[:, :2]`` are used.
        target_deltas (Tensor[N, 5]): encoded targets.
        pred_boxes (Tensor[N, 5]): decoded predicted boxes.
        target_boxes (Tensor[N, 5]): decoded target boxes.
        fun: ``'none'`` (``1 - KFIoU``), ``'ln'`` (``-ln(KFIoU + eps)``) or ``'exp'`` (``exp(1-KFIoU) - 1``).
        beta: smooth-L1 beta of the centre term.
        eps: MMRotate's epsilon (det clamp and denominators).

    Returns:
        Tensor[N]: ``max(smooth_l1(centre deltas).sum(-1) + kf_term, 0)``.
    """
    _check_pair(pred_deltas, target_deltas, "pred_deltas", "target_deltas")
    _check_pair(pred_boxes, target_boxes, "pred_boxes", "target_boxes")
    if pred_boxes.shape != pred_deltas.shape:
        raise ValueError(
            f"pred_boxes has shape {list(pred_boxes.shape)}, which does not match "
            f"pred_deltas shape {list(pred_deltas.shape)}"
        )
    if fun not in VALID_KFIOU_FUNS:
        raise ValueError(f"fun must be one of {', '.join(repr(f) for f in VALID_KFIOU_FUNS)}; got {fun!r}")
    if not beta > 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    pred_deltas, target_deltas = _upcast(pred_deltas), _upcast(target_deltas)
    pred_boxes, target_boxes = _upcast(pred_boxes), _upcast(target_boxes)
    with _no_autocast(pred_boxes):
        diff = (pred_deltas[..., :2] - target_deltas[..., :2]).abs()
        xy = torch.where(diff < beta, 0.5 * diff * diff / beta, diff - 0.5 * beta).sum(dim=-1)
        _, _, a, b, pt = _split(pred_boxes)
        _, _, c, e, tt = _split(target_boxes)
        d = pt - tt
        cos2, sin2 = torch.cos(d) ** 2, torch.sin(d) ** 2
        det_sum = (
            a * a * b * b
            + c * c * e * e
            + cos2 * (a * a * e * e + b * b * c * c)
            + sin2 * (a * a * c * c + b * b * e * e)
        )
        # sqrt(max(det S, eps)) without forming (abce)^2, which overflows fp32 for large boxes
        vb = 4.0 * torch.maximum(a * b * c * e / det_sum.sqrt(), torch.full_like(det_sum, math.sqrt(eps)))
        # clamp: for boxes under ~1e-3 px^2 the det clamp makes vb exceed the areas, the ratio leaves
        # [0, 1] and MMRotate's -ln(KFIoU + eps) is NaN
        kfiou = (vb / (4.0 * a * b + 4.0 * c * e - vb + eps)).clamp(0.0, 1.0)
        if fun == "ln":
            kf = -torch.log(kfiou + eps)
        elif fun == "exp":
            kf = torch.exp(1.0 - kfiou) - 1.0
        else:
            kf = 1.0 - kfiou
        return (xy + kf).clamp(min=0.0)
