"""Tests of rdet.losses: exactness against MMRotate's matrix formulas, the KLD paper's properties,
hand-computed values, numerical robustness (fuzz, degenerate boxes, autocast) and bad input."""

from __future__ import annotations

import math

import pytest
import torch

from rdet.config import Config, LossConfig, class_names, config_names, load_config
from rdet.losses import (
    distribution_expectation,
    distribution_focal_loss,
    focal_loss,
    gwd_loss,
    kfiou_loss,
    kld_loss,
    knowledge_distillation_kl_div,
    smooth_l1,
    to_bin_units,
    xywha_to_gaussian,
)
from rdet.losses.regression import REGRESSION_LOSSES, check_settings, regression_loss
from rdet.models.heads import sigmoid_focal

F64 = torch.float64


def _random_pairs(n: int, seed: int = 0, dtype=F64) -> tuple[torch.Tensor, torch.Tensor]:
    """Ordinary boxes (sides 1..55 px, any angle) and targets perturbed from them."""
    g = torch.Generator().manual_seed(seed)
    centre = torch.rand(n, 2, generator=g, dtype=F64) * 200
    wh = torch.exp(torch.rand(n, 2, generator=g, dtype=F64) * 4)
    angle = (torch.rand(n, 1, generator=g, dtype=F64) - 0.5) * 2 * math.pi
    pred = torch.cat([centre, wh, angle], 1)
    target = pred + torch.randn(n, 5, generator=g, dtype=F64) * torch.tensor([3, 3, 2, 2, 0.3], dtype=F64)
    target[:, 2:4] = target[:, 2:4].abs() + 0.5
    return pred.to(dtype), target.to(dtype)


# --------------------------------------------------------------------------- MMRotate transcription
# The formulas exactly as MMRotate writes them (matrices, det, inverse), in float64, as the oracle.


def _mm_gaussian(b):
    wh = b[:, 2:4].clamp(1e-7, 1e7)
    r = b[:, 4]
    rot = torch.stack((r.cos(), -r.sin(), r.sin(), r.cos()), -1).reshape(-1, 2, 2)
    return b[:, :2], rot @ torch.diag_embed(wh * 0.5) ** 2 @ rot.transpose(1, 2)


def _mm_post(d, fun, tau):  # GDLoss postprocess (after PR #206)
    d = torch.log1p(d) if fun == "log1p" else torch.sqrt(d.clamp(1e-7)) if fun == "sqrt" else d
    return 1 - 1 / (tau + d) if tau >= 1 else d


def _mm_kld_v1(p, t, fun, tau):  # gaussian_dist_loss_v1.kld_loss
    mp, sp = _mm_gaussian(p)
    mt, st = _mm_gaussian(t)
    dl = (mp - mt).unsqueeze(-1)
    sti = torch.linalg.inv(st)
    dis = (
        (dl.transpose(1, 2) @ sti @ dl).reshape(-1)
        + (sti @ sp).diagonal(dim1=1, dim2=2).sum(-1)
        + torch.log(torch.det(st) / torch.det(sp))
        - 2
    ).clamp(min=1e-6)
    return 1 - 1 / (tau + (dis.sqrt() if fun == "sqrt" else torch.log1p(dis)))


def _mm_kld(p, t, fun, tau, alpha, sqrt):  # gaussian_dist_loss.kld_loss
    mp, sp = _mm_gaussian(p)
    mt, st = _mm_gaussian(t)
    spi = torch.linalg.inv(sp)
    dl = (mp - mt).unsqueeze(-1)
    d = (
        0.5 * (dl.transpose(1, 2) @ spi @ dl).reshape(-1) / alpha**2
        + 0.5 * (spi @ st).diagonal(dim1=1, dim2=2).sum(-1)
        + 0.5 * (torch.det(sp).log() - torch.det(st).log())
        - 1
    )
    return _mm_post(d.clamp(1e-7).sqrt() if sqrt else d, fun, tau)


def _mm_gwd(p, t, fun, tau, alpha, normalize):  # gaussian_dist_loss.gwd_loss
    mp, sp = _mm_gaussian(p)
    mt, st = _mm_gaussian(t)
    tr = lambda m: m.diagonal(dim1=1, dim2=2).sum(-1)  # noqa: E731
    det_sqrt = (torch.det(sp) * torch.det(st)).clamp(1e-7).sqrt()
    shape = tr(sp) + tr(st) - 2 * (tr(sp @ st) + 2 * det_sqrt).clamp(1e-7).sqrt()
    d = (((mp - mt) ** 2).sum(-1) + alpha**2 * shape).clamp(1e-7).sqrt()
    if normalize:
        d = d / (2 * det_sqrt.clamp(1e-7).sqrt().clamp(1e-7).sqrt()).clamp(1e-7)
    return _mm_post(d, fun, tau)


def _mm_gwd_v1(p, t, fun, tau):  # gaussian_dist_loss_v1.gwd_loss, fun 'sqrt' / 'log1p'
    mp, sp = _mm_gaussian(p)
    mt, st = _mm_gaussian(t)
    tr = lambda m: m.diagonal(dim1=1, dim2=2).sum(-1)  # noqa: E731
    det_sqrt = (torch.det(sp) * torch.det(st)).clamp(0).sqrt()
    dis = (((mp - mt) ** 2).sum(-1) + tr(sp) + tr(st) - 2 * (tr(sp @ st) + 2 * det_sqrt).clamp(0).sqrt()).clamp(1e-6)
    return 1 - 1 / (tau + (dis.sqrt() if fun == "sqrt" else torch.log1p(dis)))


def _mm_kfiou(pd, td, pb, tb, fun, beta=1 / 9, eps=1e-6):  # kf_iou_loss.kfiou_loss
    diff = (pd[:, :2] - td[:, :2]).abs()
    xy = torch.where(diff < beta, 0.5 * diff * diff / beta, diff - 0.5 * beta).sum(-1)
    _, sp = _mm_gaussian(pb)
    _, st = _mm_gaussian(tb)
    s = sp - sp @ torch.linalg.inv(sp + st) @ sp
    vb = 4 * s.det().clamp(eps).sqrt()
    k = vb / (4 * sp.det().sqrt() + 4 * st.det().sqrt() - vb + eps)
    kf = -torch.log(k + eps) if fun == "ln" else torch.exp(1 - k) - 1 if fun == "exp" else 1 - k
    return (xy + kf).clamp(0)


@pytest.mark.parametrize("fun", ["log1p", "sqrt"])
@pytest.mark.parametrize("tau", [1.0, 2.0])
def test_kld_v1_equals_mmrotate_gdloss_v1(fun, tau):
    p, t = _random_pairs(500)
    torch.testing.assert_close(
        kld_loss(p, t, fun, tau, stable=False), _mm_kld_v1(p, t, fun, tau), rtol=1e-9, atol=1e-12
    )


@pytest.mark.parametrize("fun", ["log1p", "sqrt", "none"])
@pytest.mark.parametrize("tau", [0.0, 1.0, 2.0])
@pytest.mark.parametrize("sqrt", [True, False])
def test_kld_stable_equals_mmrotate_gdloss(fun, tau, sqrt):
    p, t = _random_pairs(500, seed=1)
    torch.testing.assert_close(
        kld_loss(p, t, fun, tau, alpha=1.5, stable=True, sqrt=sqrt),
        _mm_kld(p, t, fun, tau, 1.5, sqrt),
        rtol=1e-9,
        atol=1e-11,
    )


@pytest.mark.parametrize("fun", ["log1p", "sqrt", "none"])
@pytest.mark.parametrize("tau", [0.0, 1.0])
@pytest.mark.parametrize("normalize", [True, False])
def test_gwd_equals_mmrotate_gdloss(fun, tau, normalize):
    p, t = _random_pairs(500, seed=2)
    torch.testing.assert_close(
        gwd_loss(p, t, fun, tau, alpha=0.7, normalize=normalize, stable=True),
        _mm_gwd(p, t, fun, tau, 0.7, normalize),
        rtol=1e-9,
        atol=1e-11,
    )


@pytest.mark.parametrize("fun", ["log1p", "sqrt"])
def test_gwd_v1_equals_mmrotate_gdloss_v1(fun):
    p, t = _random_pairs(500, seed=3)
    torch.testing.assert_close(
        gwd_loss(p, t, fun, 2.0, normalize=False, stable=False), _mm_gwd_v1(p, t, fun, 2.0), rtol=1e-9, atol=1e-12
    )


@pytest.mark.parametrize("fun", ["none", "ln", "exp"])
def test_kfiou_equals_mmrotate_kfloss(fun):
    p, t = _random_pairs(500, seed=4)
    g = torch.Generator().manual_seed(5)
    pd, td = torch.randn(500, 5, generator=g, dtype=F64) * 0.3, torch.randn(500, 5, generator=g, dtype=F64) * 0.3
    torch.testing.assert_close(kfiou_loss(pd, td, p, t, fun), _mm_kfiou(pd, td, p, t, fun), rtol=1e-9, atol=1e-11)


def test_gradients_equal_the_oracle_gradients():
    p, t = _random_pairs(300, seed=13)
    cases = [
        (lambda a, b: kld_loss(a, b), lambda a, b: _mm_kld_v1(a, b, "log1p", 1.0)),
        (lambda a, b: kld_loss(a, b, stable=True, sqrt=False), lambda a, b: _mm_kld(a, b, "log1p", 1.0, 1.0, False)),
        (lambda a, b: gwd_loss(a, b, tau=0.0), lambda a, b: _mm_gwd(a, b, "log1p", 0.0, 1.0, True)),
    ]
    for ours, ref in cases:
        grads = []
        for fn in (ours, ref):
            leaf = p.clone().requires_grad_(True)
            fn(leaf, t).sum().backward()
            grads.append(leaf.grad)
        torch.testing.assert_close(grads[0], grads[1], rtol=1e-7, atol=1e-10)


def test_angle_gradient_grows_with_aspect_ratio_as_the_paper_says():
    # prediction = target turned by d (sides w = r h): KL = sin^2(d) (r - 1/r)^2 / 2 (from the closed form with
    # g(r^2) + g(1/r^2) = (r - 1/r)^2), so dKL/d(angle) = sin(2d) (r - 1/r)^2 / 2, whereas an l1 / smooth-L1 loss
    # on the angle delta has the same gradient for every r
    r = torch.tensor([1.5, 2.0, 5.0, 10.0, 40.0], dtype=F64)
    d = math.radians(3)
    zero = torch.zeros_like(r)
    target = torch.stack([zero, zero, 8 * r, torch.full_like(r, 8.0), zero], 1)
    angle = torch.full_like(r, d, requires_grad=True)
    pred = torch.cat([target[:, :4], angle[:, None]], 1)
    kld_loss(pred, target, "none", 0.0, stable=True, sqrt=False).sum().backward()
    torch.testing.assert_close(angle.grad, math.sin(2 * d) * (r - 1 / r) ** 2 / 2, rtol=1e-10, atol=0)
    angle.grad = None
    smooth_l1(pred[:, 4:], target[:, 4:], beta=0.11).sum().backward()
    torch.testing.assert_close(angle.grad, torch.full_like(r, d / 0.11))


def test_fp32_close_to_float64_oracle():
    p, t = _random_pairs(2000, seed=6)
    for ours, ref in [
        (kld_loss(p.float(), t.float()), _mm_kld_v1(p, t, "log1p", 1.0)),
        (kld_loss(p.float(), t.float(), stable=True, sqrt=False), _mm_kld(p, t, "log1p", 1.0, 1.0, False)),
        (gwd_loss(p.float(), t.float(), tau=0.0), _mm_gwd(p, t, "log1p", 0.0, 1.0, True)),
    ]:
        assert ours.dtype == torch.float32
        torch.testing.assert_close(ours.double(), ref, rtol=1e-5, atol=1e-5)


def test_closed_form_survives_where_matrix_form_breaks():
    # a 1000:1 box rotated by 30 deg: in fp32, det() of the covariance cancels (MMRotate's matrix form loses
    # most digits); the closed form stays within 1e-5 of the float64 oracle
    t = torch.tensor([[50.0, 50.0, 1000.0, 1.0, math.radians(30)]], dtype=F64)
    p = t + torch.tensor([[0.5, -0.3, 2.0, 0.05, 0.001]], dtype=F64)
    ref = _mm_kld(p, t, "log1p", 1.0, 1.0, False)
    torch.testing.assert_close(
        kld_loss(p.float(), t.float(), stable=True, sqrt=False).double(), ref, rtol=1e-5, atol=1e-6
    )
    _, sigma = xywha_to_gaussian(p.float())
    naive_det = sigma[..., 0, 0] * sigma[..., 1, 1] - sigma[..., 0, 1] ** 2
    exact_det = (p[:, 2] * p[:, 3] / 4) ** 2
    assert abs(naive_det.double() / exact_det - 1).item() > 1e-4  # the matrix route is already off


# --------------------------------------------------------------------------- the paper's properties


def test_xywha_to_gaussian_known_values():
    boxes = torch.tensor(
        [[1.0, 2.0, 4.0, 2.0, 0.0], [1.0, 2.0, 4.0, 2.0, math.pi / 2], [0.0, 0.0, 4.0, 2.0, math.pi / 4]], dtype=F64
    )
    mu, sigma = xywha_to_gaussian(boxes)
    assert mu.shape == (3, 2) and sigma.shape == (3, 2, 2)
    torch.testing.assert_close(mu[0], torch.tensor([1.0, 2.0], dtype=F64))
    # sigma = R diag(w^2/4, h^2/4) R^T: diag(4, 1); rotated 90 deg: diag(1, 4); at +45 deg (clockwise on
    # screen, w axis along (1, 1)/sqrt 2): [[(4+1)/2, (4-1)/2], [(4-1)/2, (4+1)/2]]
    expected = torch.tensor([[[4.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [0.0, 4.0]], [[2.5, 1.5], [1.5, 2.5]]], dtype=F64)
    torch.testing.assert_close(sigma, expected, atol=1e-12, rtol=0)


def test_identity_gives_the_documented_floor():
    p, _ = _random_pairs(100, seed=7)
    # stable, sqrt=False: exactly 0
    assert torch.equal(kld_loss(p, p, stable=True, sqrt=False), torch.zeros(100, dtype=F64))
    # GDLoss_v1 clamps 2KL at 1e-6: 1 - 1/(1 + log1p(1e-6))
    torch.testing.assert_close(kld_loss(p, p), torch.full((100,), 1 - 1 / (1 + math.log1p(1e-6)), dtype=F64))
    # GDLoss with its default sqrt=True clamps KL at 1e-7 before the sqrt
    torch.testing.assert_close(
        kld_loss(p, p, stable=True), torch.full((100,), 1 - 1 / (1 + math.log1p(math.sqrt(1e-7))), dtype=F64)
    )
    # GWD, unnormalised: distance sqrt(1e-7)
    torch.testing.assert_close(
        gwd_loss(p, p, normalize=False), torch.full((100,), 1 - 1 / (1 + math.log1p(math.sqrt(1e-7))), dtype=F64)
    )
    # normalised, tau 0: log1p(sqrt(1e-7) / (2 (abce)^(1/4))) with abce = (w h / 4)^2 for identical boxes
    abce = (p[:, 2] * p[:, 3] / 4) ** 2
    torch.testing.assert_close(gwd_loss(p, p, tau=0.0), torch.log1p(math.sqrt(1e-7) / (2 * abce**0.25)))


def test_losses_are_non_negative():
    p, t = _random_pairs(3000, seed=8)
    for loss in [
        kld_loss(p, t),
        kld_loss(p, t, "sqrt"),
        kld_loss(p, t, stable=True),
        kld_loss(p, t, stable=True, sqrt=False),
        kld_loss(p, t, "none", 0.0, stable=True),
        gwd_loss(p, t),
        gwd_loss(p, t, tau=0.0),
        gwd_loss(p, t, "sqrt", 2.0, normalize=False, stable=False),
    ]:
        assert (loss >= 0).all()


@pytest.mark.parametrize("k", [0.01, 3.0, 1000.0])
def test_kld_and_normalized_gwd_are_scale_invariant(k):
    p, t = _random_pairs(300, seed=9)
    scale = torch.tensor([k, k, k, k, 1.0], dtype=F64)  # angles do not scale
    fns = [lambda a, b: kld_loss(a, b), lambda a, b: kld_loss(a, b, stable=True, sqrt=False)]
    if k >= 1:  # GWD's clamp of abce at sqrt(1e-7) binds for sub-pixel boxes (k = 0.01 makes 1 px boxes 0.01 px)
        fns.append(lambda a, b: gwd_loss(a, b, tau=0.0))
    for fn in fns:
        torch.testing.assert_close(fn(p * scale, t * scale), fn(p, t), rtol=1e-9, atol=1e-12)
    # whereas the unnormalised Wasserstein distance grows with the scale
    assert not torch.allclose(gwd_loss(p * scale, t * scale, normalize=False), gwd_loss(p, t, normalize=False))


def _raw_kl_pt(p, t):
    """KL(N_p || N_t) through the public API: GDLoss_v1 with fun='none', tau=1 gives 1 - 1/(1 + 2KL)."""
    loss = kld_loss(p, t, "none", 1.0)
    return (loss / (1 - loss)) / 2


def test_horizontal_kld_reduces_to_weighted_ln_norm():
    # Hand derivation (angle 0 for both): S_t = diag(w_t^2/4, h_t^2/4), S_p likewise, so
    #   2 KL(N_p||N_t) = 4dx^2/w_t^2 + 4dy^2/h_t^2 + w_p^2/w_t^2 + h_p^2/h_t^2 - 2 + ln(w_t^2 h_t^2 / (w_p^2 h_p^2)).
    # With the regression deltas t_x = dx/w_t, t_y = dy/h_t, t_w = ln(w_p/w_t), t_h = ln(h_p/h_t):
    #   KL = 2 t_x^2 + 2 t_y^2 + (e^{2 t_w} - 1 - 2 t_w)/2 + (e^{2 t_h} - 1 - 2 t_h)/2,
    # and since (e^{2u} - 1 - 2u)/2 = u^2 + O(u^3), KL ~ 2 t_x^2 + 2 t_y^2 + t_w^2 + t_h^2: a weighted l2-norm of
    # the standard deltas (the paper's "degenerates into the l_n-norm" for horizontal boxes), whose centre
    # weight 1/w_t, 1/h_t is what makes it scale invariant.
    g = torch.Generator().manual_seed(10)
    n = 200
    t = torch.cat(
        [
            torch.rand(n, 2, generator=g, dtype=F64) * 100,
            5 + torch.rand(n, 2, generator=g, dtype=F64) * 50,
            torch.zeros(n, 1, dtype=F64),
        ],
        1,
    )
    deltas = torch.randn(n, 4, generator=g, dtype=F64) * 0.3
    p = torch.cat(
        [t[:, :2] + deltas[:, :2] * t[:, 2:4], t[:, 2:4] * deltas[:, 2:4].exp(), torch.zeros(n, 1, dtype=F64)], 1
    )
    tx, ty, tw, th = deltas.unbind(1)
    hand = 2 * tx**2 + 2 * ty**2 + (torch.expm1(2 * tw) - 2 * tw) / 2 + (torch.expm1(2 * th) - 2 * th) / 2
    torch.testing.assert_close(_raw_kl_pt(p, t), hand, rtol=1e-9, atol=1e-12)
    # KLD-stable measures KL(N_t||N_p): the same form with p and t swapped (deltas relative to the prediction)
    hand_tp = (
        2 * tx**2 * torch.exp(-2 * tw)
        + 2 * ty**2 * torch.exp(-2 * th)
        + (torch.expm1(-2 * tw) + 2 * tw) / 2
        + (torch.expm1(-2 * th) + 2 * th) / 2
    )
    torch.testing.assert_close(kld_loss(p, t, "none", 0.0, stable=True, sqrt=False), hand_tp, rtol=1e-9, atol=1e-12)
    # small deltas: both directions are the weighted l2-norm up to third order (relative error O(delta));
    # checked on KL(N_t||N_p), as GDLoss_v1's clamp at 1e-6 would hide such small divergences
    small = deltas * 1e-3
    p_small = torch.cat(
        [t[:, :2] + small[:, :2] * t[:, 2:4], t[:, 2:4] * small[:, 2:4].exp(), torch.zeros(n, 1, dtype=F64)], 1
    )
    l2 = 2 * small[:, 0] ** 2 + 2 * small[:, 1] ** 2 + small[:, 2] ** 2 + small[:, 3] ** 2
    torch.testing.assert_close(kld_loss(p_small, t, "none", 0.0, stable=True, sqrt=False), l2, rtol=1e-2, atol=0)


def test_hand_computed_values():
    t = torch.tensor([[0.0, 0.0, 4.0, 2.0, 0.0]], dtype=F64)  # sigma_x = 2, sigma_y = 1
    shifted = torch.tensor([[3.0, 0.0, 4.0, 2.0, 0.0]], dtype=F64)  # dx = 3
    turned = torch.tensor([[0.0, 0.0, 4.0, 2.0, math.pi / 2]], dtype=F64)
    small = torch.tensor([[0.0, 0.0, 2.0, 2.0, 0.0]], dtype=F64)
    big = torch.tensor([[0.0, 0.0, 4.0, 4.0, 0.0]], dtype=F64)

    def close(value, expected):
        torch.testing.assert_close(value, torch.tensor([expected], dtype=F64), rtol=1e-12, atol=1e-12)

    # 1) translation by 3 along w: KL = (dx/sigma_x)^2 / 2 = (3/2)^2 / 2 = 1.125 in both directions
    close(kld_loss(shifted, t), 1 - 1 / (1 + math.log(1 + 2.25)))  # v1: D = 2 KL = 2.25
    close(kld_loss(shifted, t, stable=True, sqrt=False), 1 - 1 / (1 + math.log(1 + 1.125)))
    close(kld_loss(shifted, t, stable=True), 1 - 1 / (1 + math.log1p(math.sqrt(1.125))))
    close(kld_loss(shifted, t, "sqrt", 2.0), 1 - 1 / (2 + 1.5))  # sqrt(2.25) = 1.5
    # 2) the same box turned by 90 deg: 2 KL = sin^2(90) [g(a^2/e^2) + g(b^2/c^2)] = g(4) + g(1/4)
    #    = (3 - ln 4) + (-3/4 + ln 4) = 2.25, i.e. KL = (r - 1/r)^2 / 2 with r = 2
    close(kld_loss(turned, t, "none", 0.0, stable=True, sqrt=False), 1.125)
    # ... and a 4x2 box turned by 90 deg is the 2x4 box at angle 0
    swapped = torch.tensor([[0.0, 0.0, 2.0, 4.0, 0.0]], dtype=F64)
    close(kld_loss(turned, t), kld_loss(swapped, t).item())
    # 3) scale only (2x2 vs 4x4, sigma 1 vs 2): KL is asymmetric
    #    KL(p||t) = (1/4 + 1/4 - 2 + ln 16) / 2 = 0.636294...; KL(t||p) = (4 + 4 - 2 - ln 16) / 2 = 1.613706...
    close(_raw_kl_pt(small, big), (0.5 - 2 + math.log(16)) / 2)
    close(kld_loss(small, big, "none", 0.0, stable=True, sqrt=False), (8 - 2 - math.log(16)) / 2)
    # 4) GWD, normalised, tau 0 (the published GWD setting): scale = 2 (abce)^(1/4) = 2 * 4^(1/4) = 2 sqrt 2
    #    translation: W = 3 -> log1p(3 / (2 sqrt 2)); rotation by 90 deg: B = 4+1+4+1 - 2 sqrt(8 + 2*4) = 2,
    #    W = sqrt 2 -> log1p(1/2)
    close(gwd_loss(shifted, t, tau=0.0), math.log1p(3 / (2 * math.sqrt(2))))
    close(gwd_loss(turned, t, tau=0.0), math.log(1.5))
    # 5) KFIoU of identical 4x2 boxes: det(S_p + S_t) = 16, det S = 16/16 = 1, V = 4, KFIoU = 4/(8 + 8 - 4) = 1/3
    zero = torch.zeros(1, 5, dtype=F64)
    close(kfiou_loss(zero, zero, t, t), 1 - 4 / (8 + 8 - 4 + 1e-6))


DEGENERATE = torch.tensor(
    [
        [0.0, 0.0, 0.0, 10.0, 0.3],
        [0.0, 0.0, 10.0, 0.0, -0.3],
        [0.0, 0.0, 0.0, 0.0, 0.0],  # w or h = 0
        [5.0, 5.0, 1000.0, 1.0, 0.1],
        [5.0, 5.0, 1.0, 1000.0, -0.7],  # 1000:1
        [1.0, 1.0, 10.0, 5.0, math.pi / 2],
        [1.0, 1.0, 10.0, 5.0, -math.pi / 2],  # +-pi/2
        [1e7, -1e7, 50.0, 20.0, 1.0],
        [-1e7, 1e7, 1e-3, 1e6, 2.0],  # huge coordinates
        [0.0, 0.0, 1e9, 1e-9, 0.0],
        [3.0, 4.0, -5.0, 2.0, 0.0],  # beyond the clamps
    ]
)


def _all_flavours():
    return {
        "kld": lambda p, t: kld_loss(p, t),
        "kld-sqrt": lambda p, t: kld_loss(p, t, "sqrt"),
        "kld-stable": lambda p, t: kld_loss(p, t, stable=True, sqrt=False),
        "kld-stable-sqrt-none-tau0": lambda p, t: kld_loss(p, t, "none", 0.0, stable=True),
        "gwd": lambda p, t: gwd_loss(p, t, tau=0.0),
        "gwd-sqrt": lambda p, t: gwd_loss(p, t, "sqrt", normalize=False),
        "gwd-v1": lambda p, t: gwd_loss(p, t, "sqrt", 2.0, normalize=False, stable=False),
        "kfiou-ln": lambda p, t: kfiou_loss(p * 1e-3, t * 1e-3, p, t, "ln"),
    }


def test_degenerate_boxes_give_finite_loss_and_gradient():
    n = len(DEGENERATE)
    pred = DEGENERATE.repeat_interleave(n, 0)  # every degenerate box against every other one
    target = DEGENERATE.repeat(n, 1)
    for name, fn in _all_flavours().items():
        for a, b in [(pred, target), (target, pred)]:
            a = a.clone().requires_grad_(True)
            loss = fn(a, b)
            loss.sum().backward()
            assert torch.isfinite(loss).all(), name
            assert torch.isfinite(a.grad).all(), name


def _fuzz_pairs(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pairs mixing ordinary, tiny/huge (1e-9..1e8 px), 1000:1, zero-sized, +-pi/2 and far-away boxes,
    near-identical and identical pairs."""
    g = torch.Generator().manual_seed(seed)

    def boxes():
        kind = torch.randint(0, 4, (n, 1), generator=g)
        centre = (torch.rand(n, 2, generator=g) - 0.5) * torch.where(kind == 3, 2e7, 2e3)
        wh = 10 ** (torch.rand(n, 2, generator=g) * 17 - 9)
        wh = torch.where(kind == 1, torch.stack([wh[:, 0], wh[:, 0] * 1e-3], 1), wh)
        wh = torch.where(torch.rand(n, 2, generator=g) < 0.02, torch.zeros_like(wh), wh)
        angle = (torch.rand(n, generator=g) - 0.5) * 4 * math.pi
        angle = torch.where(torch.rand(n, generator=g) < 0.1, math.pi / 2 * torch.sign(angle), angle)
        return torch.cat([centre, wh, angle[:, None]], 1)

    pred, target = boxes(), boxes()
    jitter = torch.randn(n, 5, generator=g) * torch.tensor([1e-3, 1e-3, 1e-3, 1e-3, 1e-4]) * target.abs().clamp(min=1)
    pred = torch.where(torch.rand(n, 1, generator=g) < 0.3, target + jitter, pred)
    pred = torch.where(torch.rand(n, 1, generator=g) < 0.05, target, pred)
    return pred, target


@pytest.mark.parametrize("mode", ["fp32", "bf16-autocast", "bf16-inputs"])
def test_fuzz_finite_loss_and_gradient(mode):
    # 1e5 pairs in fp32 and under autocast (the CI share of benchmarks/fuzz_losses.py, which runs 1e6)
    pred, target = _fuzz_pairs(
        20_000 if mode == "bf16-inputs" else 100_000, seed={"fp32": 0, "bf16-autocast": 1, "bf16-inputs": 2}[mode]
    )
    if mode == "bf16-inputs":
        pred, target = pred.bfloat16(), target.bfloat16()
    for name, fn in _all_flavours().items():
        leaf = pred.clone().requires_grad_(True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=mode == "bf16-autocast"):
            loss = fn(leaf, target)
        assert loss.dtype == torch.float32, name  # computed in fp32 whatever the input / autocast
        loss.sum().backward()
        assert torch.isfinite(loss).all(), f"{name}: {(~torch.isfinite(loss)).sum()} non-finite losses"
        assert torch.isfinite(leaf.grad).all(), f"{name}: {(~torch.isfinite(leaf.grad)).sum()} non-finite grads"


def test_fp16_inputs_are_upcast():
    p, t = _random_pairs(100, seed=11, dtype=torch.float16)
    loss = kld_loss(p, t, stable=True, sqrt=False)
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss, kld_loss(p.float(), t.float(), stable=True, sqrt=False))


# --------------------------------------------------------------------------- bad input


def test_bad_input_errors_name_the_argument():
    good = torch.rand(4, 5) + 1
    with pytest.raises(ValueError, match="target"):
        kld_loss(good, torch.rand(3, 5))
    with pytest.raises(ValueError, match="pred"):
        kld_loss(torch.rand(4, 4), torch.rand(4, 4))
    with pytest.raises(ValueError, match="target"):
        gwd_loss(good, torch.rand(4, 6))
    with pytest.raises(ValueError, match="pred"):
        gwd_loss([[0, 0, 1, 1, 0]], good)
    with pytest.raises(ValueError, match="floating"):
        kld_loss(good.long(), good.long())
    with pytest.raises(ValueError, match="'log1p', 'sqrt', 'none'"):
        kld_loss(good, good, fun="log")
    with pytest.raises(ValueError, match="'log1p', 'sqrt', 'none'"):
        gwd_loss(good, good, fun="exp")
    with pytest.raises(ValueError, match="'none', 'ln', 'exp'"):
        kfiou_loss(good, good, good, good, fun="log1p")
    with pytest.raises(ValueError, match="sqrt=True needs stable=True"):
        kld_loss(good, good, sqrt=True)
    with pytest.raises(ValueError, match="normalize=True needs stable=True"):
        gwd_loss(good, good, stable=False)
    with pytest.raises(ValueError, match="tau"):
        kld_loss(good, good, tau=-1.0)
    with pytest.raises(ValueError, match="alpha"):
        kld_loss(good, good, alpha=0.0)
    # the table reports the same errors for settings, naming the field
    assert any("alpha" in p for p in check_settings(LossConfig(type="kld", alpha=0.0)))
    assert check_settings(LossConfig(type="avg"))[0].startswith("type: type 'avg' is not one of 'l1'")


# --------------------------------------------------------------------------- focal, smooth-L1


def test_focal_loss_hand_values():
    logits = torch.zeros(1, 2)
    onehot = torch.tensor([[1.0, 0.0]])
    # p = 0.5: BCE = ln 2; positive: alpha (1-p)^2 = 0.25 * 0.25; negative: (1-alpha) p^2 = 0.75 * 0.25
    expected = torch.tensor([[0.0625 * math.log(2), 0.1875 * math.log(2)]])
    torch.testing.assert_close(focal_loss(logits, onehot), expected)
    # logit 2 for the positive: p = sigmoid(2), loss = 0.25 (1-p)^2 (-ln p)
    p = 1 / (1 + math.exp(-2))
    torch.testing.assert_close(
        focal_loss(torch.tensor([[2.0]]), torch.tensor([[1.0]])), torch.tensor([[0.25 * (1 - p) ** 2 * -math.log(p)]])
    )
    # integer labels: label C is background (an all-zero row)
    logits = torch.randn(5, 3)
    labels = torch.tensor([0, 2, 3, 1, 3])
    onehot = torch.nn.functional.one_hot(labels, 4)[:, :3].float()
    torch.testing.assert_close(focal_loss(logits, labels), focal_loss(logits, onehot))
    with pytest.raises(ValueError, match=r"\[0, 3\]"):
        focal_loss(logits, torch.tensor([0, 4, 1, 1, 1]))
    with pytest.raises(ValueError, match="target"):
        focal_loss(logits, torch.rand(5, 4))


def test_smooth_l1_hand_values():
    pred = torch.tensor([[0.5, 2.0, -3.0]])
    zero = torch.zeros(1, 3)
    torch.testing.assert_close(smooth_l1(pred, zero, beta=1.0), torch.tensor([[0.125, 1.5, 2.5]]))
    torch.testing.assert_close(smooth_l1(pred, zero, beta=0.0), torch.tensor([[0.5, 2.0, 3.0]]))
    with pytest.raises(ValueError, match="target"):
        smooth_l1(pred, torch.zeros(2, 3))


# --------------------------------------------------------------------------- distributions


def test_distribution_expectation():
    flat = torch.zeros(3, 9)  # reg_max = 8, uniform
    torch.testing.assert_close(distribution_expectation(flat), torch.full((3,), 4.0))
    torch.testing.assert_close(distribution_expectation(flat, -2.0, 2.0), torch.zeros(3), atol=1e-6, rtol=0)
    peaked = torch.full((1, 9), -1e4)
    peaked[0, 6] = 0.0
    torch.testing.assert_close(distribution_expectation(peaked), torch.tensor([6.0]))
    torch.testing.assert_close(distribution_expectation(peaked, -2.0, 2.0), torch.tensor([1.0]))
    torch.testing.assert_close(
        to_bin_units(torch.tensor([-2.0, 0.0, 1.0, 5.0]), 8, -2.0, 2.0), torch.tensor([0.0, 4.0, 6.0, 8.0])
    )


def test_distribution_focal_loss():
    # uniform logits over 5 bins: every CE is ln 5, and the two weights sum to 1
    torch.testing.assert_close(
        distribution_focal_loss(torch.zeros(2, 5), torch.tensor([2.3, 4.0])), torch.full((2,), math.log(5))
    )
    # at its optimum (mass 0.7 on bin 2, 0.3 on bin 3) the loss is the entropy, and the expectation is 2.3
    probs = torch.tensor([[1e-12, 1e-12, 0.7, 0.3, 1e-12]])
    logits = probs.log()
    torch.testing.assert_close(
        distribution_focal_loss(logits, torch.tensor([2.3])),
        torch.tensor([-(0.7 * math.log(0.7) + 0.3 * math.log(0.3))]),
        atol=1e-5,
        rtol=1e-5,
    )
    torch.testing.assert_close(distribution_expectation(logits), torch.tensor([2.3]))
    # label = reg_max uses bins (reg_max-1, reg_max) with weights (0, 1)
    logits = torch.randn(1, 5)
    torch.testing.assert_close(
        distribution_focal_loss(logits, torch.tensor([4.0])),
        torch.nn.functional.cross_entropy(logits, torch.tensor([4]), reduction="none"),
    )
    with pytest.raises(ValueError, match="label"):
        distribution_focal_loss(logits, torch.tensor([4.5]))


# --------------------------------------------------------------------------- distillation


def test_kd_zero_when_student_equals_teacher():
    logits = torch.randn(7, 9) * 3
    assert torch.equal(knowledge_distillation_kl_div(logits, logits.clone(), T=5.0), torch.zeros(7))


def test_kd_temperature_squared_factor():
    pred = torch.tensor([[0.0, 0.0]], dtype=F64)
    soft = torch.tensor([[math.log(3.0), 0.0]], dtype=F64)
    # T = 1: teacher (3/4, 1/4), student (1/2, 1/2): KL = 3/4 ln(3/2) + 1/4 ln(1/2)
    kl1 = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)
    torch.testing.assert_close(knowledge_distillation_kl_div(pred, soft, T=1.0), torch.tensor([kl1], dtype=F64))
    # T = 2: teacher softmax(ln3/2, 0) = (sqrt3, 1)/(1 + sqrt3); the result is T^2 = 4 times that KL
    q = math.sqrt(3) / (1 + math.sqrt(3))
    kl2 = q * math.log(q / 0.5) + (1 - q) * math.log((1 - q) / 0.5)
    torch.testing.assert_close(knowledge_distillation_kl_div(pred, soft, T=2.0), torch.tensor([4 * kl2], dtype=F64))
    # 'mean' (MMDetection's LD) divides by the number of bins
    torch.testing.assert_close(
        knowledge_distillation_kl_div(pred, soft, T=2.0, class_reduction="mean"), torch.tensor([2 * kl2], dtype=F64)
    )


def test_kd_gradient_flows_only_into_the_student():
    student = torch.randn(4, 9, requires_grad=True)
    teacher = torch.randn(4, 9, requires_grad=True)
    (10.0 * knowledge_distillation_kl_div(student, teacher, T=5.0).mean()).backward()
    assert teacher.grad is None
    assert student.grad is not None and student.grad.abs().sum() > 0
    # d(T^2 KL)/d z_s = T (softmax(z_s/T) - softmax(z_t/T)), summed over rows then averaged by 'mean'
    s, t = student.detach(), teacher.detach()
    expected = 10.0 * 5.0 * (torch.softmax(s / 5, 1) - torch.softmax(t / 5, 1)) / 4
    torch.testing.assert_close(student.grad, expected)


# --------------------------------------------------------------------------- the regression-loss table


def _settings(type_, **kw) -> LossConfig:
    return LossConfig(type=type_, **kw)


def test_table_weights_averages_over_positives_and_scales():
    p, t = _random_pairs(6, seed=12)
    per_box = kld_loss(p, t, stable=True, sqrt=False)
    s = _settings("kld", stable=True, sqrt=False, loss_weight=5.5)
    torch.testing.assert_close(regression_loss(s, p, t, num_pos=4.0), 5.5 * per_box.sum() / 4.0)
    torch.testing.assert_close(
        regression_loss(_settings("gwd", stable=True, tau=0.0, loss_weight=5.0), p, t, num_pos=1.0),
        5.0 * gwd_loss(p, t, tau=0.0).sum(),
    )
    torch.testing.assert_close(
        regression_loss(_settings("smooth_l1", beta=0.11), p, t, num_pos=6.0), smooth_l1(p, t, 0.11).sum(-1).mean()
    )
    # l1 is smooth-L1 with beta 0, summed over the 5 deltas of each box (mmdet L1Loss)
    torch.testing.assert_close(regression_loss(_settings("l1"), p, t, num_pos=2.0), (p - t).abs().sum() / 2.0)
    # GDLoss_v1 takes no square root and GWD-v1 no normalisation, whatever those (unread) fields say
    v1 = _settings("kld", stable=False, sqrt=True)
    torch.testing.assert_close(REGRESSION_LOSSES["kld"].per_box(v1, p, t), kld_loss(p, t, stable=False))
    g1 = _settings("gwd", stable=False, normalize=True)
    torch.testing.assert_close(
        REGRESSION_LOSSES["gwd"].per_box(g1, p, t), gwd_loss(p, t, normalize=False, stable=False)
    )


def test_table_on_empty_input_returns_connected_zero():
    p = torch.zeros(0, 5, requires_grad=True)
    for s in (_settings("kld"), _settings("gwd", stable=True), _settings("kld", stable=True, sqrt=False)):
        out = regression_loss(s, p, torch.zeros(0, 5), num_pos=1.0)
        assert out.item() == 0.0 and out.requires_grad
    focal = sigmoid_focal(torch.zeros(0, 3, requires_grad=True), torch.zeros(0, dtype=torch.long), 3, 2.0, 0.25)
    assert focal.sum().item() == 0.0


def test_focal_and_distribution_reductions_of_the_heads():
    # the heads' classification loss: focal summed over classes, background label C an all-zero row
    logits, labels = torch.randn(6, 3), torch.tensor([0, 1, 3, 3, 2, 3])
    torch.testing.assert_close(sigmoid_focal(logits, labels, 3, 2.0, 0.25), focal_loss(logits, labels).sum(-1))


def test_table_rows_match_the_config_choices_and_check_settings():
    import typing

    from rdet.config import LossType

    assert tuple(REGRESSION_LOSSES) == typing.get_args(LossType)
    assert [k for k, row in REGRESSION_LOSSES.items() if row.decoded] == ["kld", "gwd"]
    assert check_settings(_settings("l1")) == []
    assert check_settings(_settings("kld", stable=True, sqrt=False, loss_weight=5.5)) == []
    # a value nothing reads is an error naming the field (MMRotate configs pass sqrt=False to GDLoss_v1 silently)
    problems = check_settings(_settings("kld", beta=0.1))
    assert problems == ["beta: 'kld' does not read beta (it reads fun, tau, alpha, stable, sqrt, reduction)"]
    assert "fun" in check_settings(_settings("l1", fun="sqrt"))[0]
    assert any("beta must be >= 0" in p for p in check_settings(_settings("smooth_l1", beta=-1.0)))
    assert any("tau" in p for p in check_settings(_settings("gwd", tau=-1.0)))
    with pytest.raises(ValueError, match="'iou' is not one of 'l1', 'smooth_l1', 'kld', 'gwd'"):
        regression_loss(_settings("iou"), torch.zeros(0, 5), torch.zeros(0, 5), num_pos=1.0)


def test_validate_reads_the_table():
    c = Config()
    c.model.head.loss_bbox = LossConfig(type="kld")
    with pytest.raises(ValueError, match="model.head.reg_decoded_bbox: must be True with 'kld'"):
        rdet_validate(c)
    c.model.head.reg_decoded_bbox = True
    c.model.head.loss_bbox.beta = 0.5
    with pytest.raises(ValueError, match="model.head.loss_bbox: beta: 'kld' does not read beta"):
        rdet_validate(c)
    c.model.head.loss_bbox = LossConfig(type="kdl")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="model.head.loss_bbox.type: 'kdl' is not one of"):
        rdet_validate(c)


def rdet_validate(config):
    from rdet.config import validate

    return validate(config)


# the published settings (MMRotate dev-1.x and Rotated-LD configs) as the shipped configs reproduce them:
# type, GDLoss stable flag and loss weight of each config's head (and refine) loss
PUBLISHED_LOSSES = {
    "rotated-retinanet-rbox-le90_r50_fpn_1x_dota": ("l1", None, 1.0),
    "rotated-retinanet-hbox-oc_r50_fpn_kld_1x_dota": ("kld", False, 1.0),
    "rotated-retinanet-rbox-le90_r50_fpn_kld-stable_1x_dota": ("kld", True, 5.5),
    "rotated-retinanet-rbox-le90_r50_fpn_kld-stable_rr-6x_hrsc": ("kld", True, 1.0),
    "rotated_retinanet_distribution_hbb_gwd_r34_fpn_2x_dota_oc": ("gwd", True, 5.0),
    "r3det-oc_r50_fpn_1x_dota": ("smooth_l1", None, 1.0),
    "r3det-oc_r50_fpn_kld-stable_1x_dota": ("kld", True, 5.0),
}


def test_published_settings_go_through_the_table():
    names = config_names()
    for name, path in names.items():
        config = load_config(path)  # validate() checked every loss against the table
        m = config.model
        losses = [m.head.loss_bbox] + ([m.refine.loss_bbox] if m.refine is not None else [])
        for loss in losses:
            assert check_settings(loss) == [], name
        assert m.head.reg_decoded_bbox == REGRESSION_LOSSES[m.head.loss_bbox.type].decoded, name
        assert (m.head.loss_cls.gamma, m.head.loss_cls.alpha, m.head.loss_cls.loss_weight) == (2.0, 0.25, 1.0)
        assert class_names(config)
    for name, (type_, stable, weight) in PUBLISHED_LOSSES.items():
        m = load_config(names[name]).model
        for loss in [m.head.loss_bbox] + ([m.refine.loss_bbox] if m.refine is not None else []):
            assert (loss.type, loss.loss_weight) == (type_, weight), name
            if stable is not None:
                assert loss.stable == stable, name
    stable = load_config(names["rotated-retinanet-rbox-le90_r50_fpn_kld-stable_1x_dota"]).model.head.loss_bbox
    assert (stable.fun, stable.tau, stable.sqrt) == ("log1p", 1.0, False)
    gwd = load_config(names["rotated_retinanet_distribution_hbb_gwd_r34_fpn_2x_dota_oc"]).model.head.loss_bbox
    assert gwd.tau == 0.0  # GDLoss's module default, which the published GWD configs rely on
    assert load_config(names["r3det-oc_r50_fpn_1x_dota"]).model.head.loss_bbox.beta == 0.11


def test_level_means_reduction_is_mmrotates_gdloss_v1_normalisation():
    from rdet.losses.regression import gaussian_reduce, level_means, mean_over_positives

    per_box = torch.tensor([1.0, 2.0, 3.0, 10.0], requires_grad=True)
    level = torch.tensor([0, 0, 0, 2])
    # sum over levels of each level's mean: (1 + 2 + 3) / 3 + 10 / 1 = 12; the positive count: 16 / 4 = 4
    assert float(level_means(per_box, level, 4.0, None)) == 12.0
    assert float(mean_over_positives(per_box, level, 4.0, None)) == 4.0
    assert float(gaussian_reduce(per_box, level, 4.0, LossConfig(type="kld", reduction="level_means"))) == 12.0
    assert float(gaussian_reduce(per_box, level, 4.0, LossConfig(type="kld"))) == 4.0
    empty = level_means(per_box[:0], level[:0], 1.0, None)
    empty.backward()  # no positives: 0, still connected to the graph
    assert float(empty) == 0.0 and per_box.grad is not None
    # the row reads it; a loss that does not is told so
    assert check_settings(LossConfig(type="kld", reduction="level_means")) == []
    assert check_settings(LossConfig(type="l1", reduction="level_means"))[0].startswith("reduction: 'l1' does not read")
