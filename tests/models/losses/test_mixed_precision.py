"""Mixed precision (``--amp``): the RSS losses with float16/bfloat16 logits.

Under ``AmpOptimWrapper`` the head's logits are float16 (or bfloat16) and
the loss is multiplied by ``GradScaler``'s scale (2**16 at the start)
before backward. Each test runs a loss on low-precision logits and on the
same values in float32, with the same actions, and checks that the
gradient handed to the logits is finite and equals the float32 one up to
the rounding of one cast (``rtol`` = the dtype's epsilon, twice the worst
rounding error). The adversarial cases are those that overflowed float16:
a rewarded action drawn with ``q(a) = 2**-24`` (importance weight 2**24)
and a 1x1 PSR grid whose cell gradient (~1) was cast to float16 before the
pooling divided it by the cell area.
"""
import pytest
import torch
import torch.nn.functional as F

from rss_mmseg.models.losses import pixel_reward_loss
from rss_mmseg.models.losses.local_expectation_loss import \
    LocalExpectationLoss
from rss_mmseg.models.losses.pixel_reward_loss import PixelRewardLoss
from rss_mmseg.models.losses.psd_loss import PSDLoss
from rss_mmseg.models.losses.psr_reward_loss import PSRRewardLoss
from rss_mmseg.models.policy import MIN_SAMPLING_PROB, PixelPolicy, pool_logits
from rss_mmseg.models.rewards import PixelMatchReward
from tests.models.utils import make_data_samples

B, C, H, W = 2, 5, 32, 32  # N = 2048 pixels
SCALE = 2.0**16  # GradScaler's initial loss scale
HALF = (torch.float16, torch.bfloat16)
HALF_IDS = ('fp16', 'bf16')


def _logits(dtype, seed=0, scale=1.0, shape=(B, C, H, W)):
    """Random logits, already rounded to ``dtype``."""
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=gen) * scale).to(dtype)


def _labels(seed=1, size=(B, H, W)):
    gen = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, C, size, generator=gen)
    labels[:, 0, :4] = 255  # a few ignored pixels
    return labels


def _assert_close(grad, ref, dtype, scale=SCALE):
    """``grad`` (dtype, of the loss times ``scale``) vs the float32 ``ref``
    (of the loss): finite, and equal up to one rounding to ``dtype``."""
    assert grad.dtype == dtype
    assert torch.isfinite(grad).all(), (
        f'non-finite {dtype} gradient: {int((~torch.isfinite(grad)).sum())}'
        f' of {grad.numel()} entries')
    got = grad.double() / scale
    ref = ref.double()
    assert ref.abs().max() > 0
    # round to nearest: relative error <= eps / 2; below the smallest
    # normal number (float16), absolute error <= half the subnormal step
    tol = torch.finfo(dtype).eps * ref.abs() + torch.finfo(dtype).tiny * (
        torch.finfo(dtype).eps / scale)
    err = (got - ref).abs()
    assert (err <= tol).all(), (
        f'max error {float(err.max()):.3g} at |ref| '
        f'{float(ref.abs().flatten()[err.argmax()]):.3g}')


def _pixel_grad(loss, z, actions, labels, policy_kwargs, scale=SCALE):
    """Gradient of ``scale * loss`` w.r.t. logits ``z`` (a leaf copy)."""
    z = z.detach().clone().requires_grad_()
    policy = PixelPolicy(z, **policy_kwargs)
    rewards, valid = PixelMatchReward()(actions, make_data_samples(labels))
    (loss(policy, actions, rewards, valid)[loss.loss_name] *
     scale).backward()
    return z.grad


def _case_id(value):
    if isinstance(value, dict):
        return '-'.join(f'{k}={v}' for k, v in value.items()) or 'on_policy'
    return f'K={value}'


PIXEL_CASES = [
    (dict(baseline='none'), dict(), 1),
    (dict(baseline='mean'), dict(), 1),
    (dict(baseline='loo'), dict(), 2),
    (dict(baseline='syncan'), dict(), 2),
    (dict(baseline='mean', iw_power=0.5, entropy_weight=0.1), dict(), 2),
    (dict(baseline='syncan', iw_power=0.0), dict(), 1),
    (dict(baseline='mean'), dict(temperature=2.0, uniform_mix=0.1), 2),
    (dict(baseline='loo', clip_weight=10.0), dict(temperature=0.5), 2),
]


@pytest.mark.parametrize('dtype', HALF, ids=HALF_IDS)
@pytest.mark.parametrize(
    'loss_kwargs,policy_kwargs,K', PIXEL_CASES, ids=_case_id)
def test_pixel_loss_half_logits_match_float32(dtype, loss_kwargs,
                                              policy_kwargs, K):
    z = _logits(dtype)
    labels = _labels()
    policy = PixelPolicy(z.float(), **policy_kwargs)
    actions, q = policy.sample(K, generator=torch.Generator().manual_seed(2))
    # a normal batch: no weight reaches the float16 cap, so float16 must
    # reproduce float32 exactly (up to the cast)
    assert float((policy.prob(actions) / q).max()) < 1024 and float(
        q.min()) > 1 / 1024
    loss = PixelRewardLoss(**loss_kwargs)
    grad = _pixel_grad(loss, z, actions, labels, policy_kwargs)
    ref = _pixel_grad(loss, z.float(), actions, labels, policy_kwargs, 1.0)
    _assert_close(grad, ref, dtype)


def _adversarial_pixel_problem(K):
    """A confident network (logit +20 on class 0, pi ~ 2e-9 elsewhere) and
    one pixel where the reference is class 1 and sample 0 drew it:
    q(a) is floored at 2**-24, the importance weight is 2**24."""
    z = torch.zeros(B, C, H, W)
    z[:, 0] = 20.0
    labels = torch.zeros(B, H, W, dtype=torch.long)
    labels[0, 5, 7] = 1
    actions = torch.zeros(K, B, H, W, dtype=torch.long)
    actions[0, 0, 5, 7] = 1
    return z, labels, actions


ADVERSARIAL_CASES = [
    (dict(baseline='none'), dict(), 1),
    (dict(baseline='mean'), dict(), 1),
    (dict(baseline='loo'), dict(), 2),
    (dict(baseline='syncan'), dict(), 1),
    (dict(baseline='mean', iw_power=0.5), dict(), 1),
    (dict(baseline='mean', entropy_weight=0.1), dict(temperature=0.5), 2),
]


@pytest.mark.parametrize('dtype', HALF, ids=HALF_IDS)
@pytest.mark.parametrize(
    'loss_kwargs,policy_kwargs,K', ADVERSARIAL_CASES, ids=_case_id)
def test_pixel_loss_weight_2_24_under_loss_scale(dtype, loss_kwargs,
                                                 policy_kwargs, K):
    z, labels, actions = _adversarial_pixel_problem(K)
    z = z.to(dtype)
    policy = PixelPolicy(z.float(), **policy_kwargs)
    assert float(policy.sampling_prob(actions)[0, 0, 5, 7]) == \
        MIN_SAMPLING_PROB
    grad = _pixel_grad(PixelRewardLoss(**loss_kwargs), z, actions, labels,
                       policy_kwargs)
    assert torch.isfinite(grad).all(), (
        f'{dtype} logits gradient overflows: '
        f'{int((~torch.isfinite(grad)).sum())} non-finite entries')
    # float16: the documented estimator, importance weights capped at
    # 1024; bfloat16 has float32's range: the exact float32 gradient
    ref_kwargs = dict(loss_kwargs)
    if dtype == torch.float16:
        ref_kwargs['max_weight'] = pixel_reward_loss.FP16_MAX_WEIGHT
    ref = _pixel_grad(
        PixelRewardLoss(**ref_kwargs), z.float(), actions, labels,
        policy_kwargs, 1.0)
    _assert_close(grad, ref, dtype)
    if dtype == torch.float16 and loss_kwargs['baseline'] != 'syncan':
        # uncapped it is the float32 gradient, 2**24 / N per logit: inf
        uncapped = _pixel_grad(
            PixelRewardLoss(**loss_kwargs, max_weight=None), z, actions,
            labels, policy_kwargs)
        assert not torch.isfinite(uncapped).all()


def test_weight_cap_only_for_float16():
    z, labels, actions = _adversarial_pixel_problem(1)
    loss = PixelRewardLoss()
    for dtype, cap in ((torch.float32, None), (torch.bfloat16, None),
                       (torch.float16, pixel_reward_loss.FP16_MAX_WEIGHT)):
        policy = PixelPolicy(z.to(dtype))
        assert loss.weight_cap(policy) == cap
        w, _ = loss.importance_weights(policy, actions)
        assert float(w.max()) == (cap or 2.0**24)
    # an explicit cap applies to every dtype, None to none
    assert PixelRewardLoss(max_weight=10).weight_cap(PixelPolicy(z)) == 10.0
    assert PixelRewardLoss(max_weight=None).weight_cap(
        PixelPolicy(z.half())) is None
    for bad in (0, -1.0, 'yes', True):
        with pytest.raises(ValueError, match='max_weight'):
            PixelRewardLoss(max_weight=bad)


def _image_grad(loss, z, grid, actions, rewards, valid, policy_kwargs,
                scale=SCALE):
    z = z.detach().clone().requires_grad_()
    policy = PixelPolicy(pool_logits(z, grid), **policy_kwargs)
    (loss(policy, actions, rewards, valid)[loss.loss_name] *
     scale).backward()
    return z.grad


IMAGE_LOSSES = {
    'psr_entropy_target_uniform':
    lambda: PSRRewardLoss(
        entropy_weight=0.05, entropy_target=0.5, uniform_weight=0.1),
    'psr_group_floor':
    lambda: PSRRewardLoss(
        normalize='group', entropy_weight=0.2, uniform_weight=0.3,
        uniform_floor=0.05),
    'psd_entropy_target_uniform':
    lambda: PSDLoss(
        entropy_weight=0.05, entropy_target=0.5, uniform_weight=0.1),
    'psd_group_mean_floor':
    lambda: PSDLoss(
        region_norm='mean', normalize='group', entropy_weight=0.2,
        uniform_weight=0.3, uniform_floor=0.05),
}


@pytest.mark.parametrize('dtype', HALF, ids=HALF_IDS)
@pytest.mark.parametrize(
    'grid', [(1, 1), (3, 5), (8, 8), None], ids=['1x1', '3x5', '8x8', 'full'])
@pytest.mark.parametrize('name', sorted(IMAGE_LOSSES))
def test_image_losses_half_logits_match_float32(dtype, grid, name):
    K = 4
    z = _logits(dtype, seed=3, scale=2.0)
    policy = PixelPolicy(pool_logits(z.float(), grid))
    actions, _ = policy.sample(K, generator=torch.Generator().manual_seed(4))
    rewards = torch.rand(K, B, generator=torch.Generator().manual_seed(5))
    valid = torch.tensor([True, True])
    grad = _image_grad(IMAGE_LOSSES[name](), z, grid, actions, rewards,
                       valid, {})
    ref = _image_grad(IMAGE_LOSSES[name](), z.float(), grid, actions,
                      rewards, valid, {}, 1.0)
    _assert_close(grad, ref, dtype)


LOCAL_CASES = {
    'cells': dict(),
    'pooled_uniform': dict(pooled=True, uniform_weight=0.01),
    'mirror': dict(step='mirror'),
}


@pytest.mark.parametrize('dtype', HALF, ids=HALF_IDS)
@pytest.mark.parametrize('grid', [(4, 4), None], ids=['4x4', 'full'])
@pytest.mark.parametrize('name', sorted(LOCAL_CASES))
def test_local_expectation_half_logits_match_float32(dtype, grid, name):
    """LocalExpectationLoss (the reward fine-tuning configs' loss, e.g.
    the -amp- Cityscapes one): one-cell gains of K = 2 samples, of the
    size an mIoU's are (1 / cells), a few of a small fragment's (hundreds
    of times that); normalized and formed into the gradient in float32,
    cast once to the logits' dtype."""
    K = 2
    z = _logits(dtype, seed=6, scale=2.0)
    policy = PixelPolicy(pool_logits(z.float(), grid))
    actions, _ = policy.sample(K, generator=torch.Generator().manual_seed(7))
    h, w = policy.logits.shape[-2:]
    gen = torch.Generator().manual_seed(8)
    gains = torch.randn(K, B, C, h, w, generator=gen) / (h * w)
    gains[:, :, 0, :2, :2] *= 300
    rewards = torch.rand(K, B, generator=gen)
    valid = torch.tensor([True, True])

    def grad(logits, scale):
        logits = logits.detach().clone().requires_grad_()
        loss = LocalExpectationLoss(**LOCAL_CASES[name])
        out = loss(
            PixelPolicy(pool_logits(logits, grid)),
            actions,
            rewards,
            valid,
            gains=gains)[loss.loss_name]
        assert out.dtype == torch.float32
        (out * scale).backward()
        return logits.grad

    _assert_close(grad(z, SCALE), grad(z.float(), 1.0), dtype)


@pytest.mark.parametrize('dtype', HALF, ids=HALF_IDS)
@pytest.mark.parametrize('name', ['psr', 'psd'])
def test_image_losses_coarse_grid_under_loss_scale(dtype, name):
    """One image, K = 2 samples that differ, a 1x1 grid, group-normalized
    advantages: the cell gradient is ~1 (2**16 times the loss scale), the
    per-pixel one 1/(H W) of it. Cast to float16 before the pooling's
    backward it was inf."""
    z = _logits(dtype, seed=6, shape=(1, C, H, W))
    actions = torch.tensor([0, 1]).view(2, 1, 1, 1)
    rewards = torch.tensor([[1.0], [0.0]])
    valid = torch.tensor([True])
    make = dict(
        psr=lambda: PSRRewardLoss(
            normalize='group', entropy_weight=0.5, uniform_weight=0.5),
        psd=lambda: PSDLoss(
            normalize='group', entropy_weight=0.5, uniform_weight=0.5))[name]
    grad = _image_grad(make(), z, (1, 1), actions, rewards, valid, {})
    assert torch.isfinite(grad).all(), f'{dtype} logits gradient overflows'
    ref = _image_grad(make(), z.float(), (1, 1), actions, rewards, valid, {},
                      1.0)
    # the cell gradient itself is beyond float16 at this loss scale
    assert float(ref.abs().max()) * H * W * SCALE > 65504
    _assert_close(grad, ref, dtype)


@pytest.mark.parametrize('dtype', HALF, ids=HALF_IDS)
def test_pool_in_float32(dtype):
    """Half-precision logits are pooled in float32, and the gradient is
    spread over the pixels in float32 and cast once. Non-divisible sizes
    (overlapping adaptive-pooling windows)."""
    z = _logits(dtype, seed=7, shape=(2, 3, 7, 11))
    cells = pool_logits(z, (3, 4))
    assert cells.dtype == torch.float32
    torch.testing.assert_close(
        cells, F.adaptive_avg_pool2d(z.float(), (3, 4)), rtol=0, atol=0)
    assert pool_logits(z, None) is z
    g = torch.randn(2, 3, 3, 4, generator=torch.Generator().manual_seed(8))
    z_lp = z.clone().requires_grad_()
    pool_logits(z_lp, (3, 4)).backward(g)
    z32 = z.float().requires_grad_()
    F.adaptive_avg_pool2d(z32, (3, 4)).backward(g)
    assert z_lp.grad.dtype == dtype
    torch.testing.assert_close(z_lp.grad, z32.grad.to(dtype), rtol=0, atol=0)
    # float32 logits take the plain path (unchanged)
    assert pool_logits(z32, (3, 4)).grad_fn.name().startswith(
        'AdaptiveAvgPool2D')


class _Head(torch.nn.Module):
    """A small conv head: features (B, 3, H, W) -> logits (B, C, H, W)."""

    def __init__(self):
        super().__init__()
        gen = torch.Generator().manual_seed(9)
        self.conv = torch.nn.Conv2d(3, C, 3, padding=1)
        with torch.no_grad():
            self.conv.weight.copy_(
                torch.randn(self.conv.weight.shape, generator=gen) * 0.3)
            self.conv.bias.zero_()

    def forward(self, x):
        return self.conv(x)


@pytest.mark.parametrize(
    'dtype,scale', [(torch.bfloat16, SCALE), (torch.float16, 2.0**8)],
    ids=['bf16', 'fp16'])
@pytest.mark.parametrize('level', ['pixel', 'image'])
def test_autocast_head(dtype, scale, level):
    """float32 parameters, logits from a conv under CPU autocast (as
    ``AmpOptimWrapper`` runs the model), the loss inside autocast too.

    The float16 case uses a smaller loss scale: the float16 backward of the
    convolution sums over pixels (a weight gradient of ~1 per unit of loss
    scale), which overflows at 2**16 for any loss, cross-entropy included;
    that is GradScaler's business, not the loss's."""
    head = _Head()
    x = torch.randn(B, 3, H, W, generator=torch.Generator().manual_seed(10))
    labels = _labels()
    gen = torch.Generator().manual_seed(11)
    with torch.autocast('cpu', dtype=dtype):
        logits = head(x)
        assert logits.dtype == dtype
        logits.retain_grad()
        if level == 'pixel':
            policy = PixelPolicy(logits, temperature=2.0)
            actions, _ = policy.sample(2, generator=gen)
            rewards, valid = PixelMatchReward()(actions,
                                                make_data_samples(labels))
            loss = PixelRewardLoss(entropy_weight=0.1)
        else:
            policy = PixelPolicy(pool_logits(logits, (4, 4)))
            actions, _ = policy.sample(4, generator=gen)
            rewards = torch.rand(4, B, generator=gen)
            valid = torch.tensor([True, True])
            loss = PSDLoss(entropy_weight=0.1, uniform_weight=0.1)
        assert policy.probs.dtype == torch.float32
        out = loss(policy, actions, rewards, valid)[loss.loss_name]
        assert out.dtype == torch.float32
    (out * scale).backward()
    # the reference: the same logits in float32, the same actions
    z32 = logits.detach().float().requires_grad_()
    if level == 'pixel':
        ref_policy = PixelPolicy(z32, temperature=2.0)
    else:
        ref_policy = PixelPolicy(pool_logits(z32, (4, 4)))
    loss(ref_policy, actions, rewards, valid)[loss.loss_name].backward()
    _assert_close(logits.grad, z32.grad, dtype, scale)
    # and through the low-precision convolution to the float32 weights
    head32 = _Head()
    head32.conv.weight.data.copy_(head.conv.weight.data)
    head32(x).backward(z32.grad)
    weight_grad = head.conv.weight.grad / scale
    ref_weight = head32.conv.weight.grad
    assert torch.isfinite(weight_grad).all()
    rel = (weight_grad - ref_weight).norm() / ref_weight.norm()
    assert rel < 8 * torch.finfo(dtype).eps, float(rel)
