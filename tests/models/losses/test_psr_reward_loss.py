"""PSRRewardLoss: closed-form gradient, unbiasedness, invalid images, K."""
import itertools
import math
import statistics

import pytest
import torch
import torch.nn.functional as F
from mmseg.registry import MODELS

from rss_mmseg.models.losses.pixel_reward_loss import \
    collapse_weights as pixel_collapse_weights
from rss_mmseg.models.losses.psr_reward_loss import PSRRewardLoss
from rss_mmseg.models.losses.utils import _PrecomputedGradient, \
    collapse_weights
from rss_mmseg.models.policy import PixelPolicy

C = 3
N_SE = 5  # tolerance of Monte-Carlo checks, in standard errors of the mean

# ---------------------------------------------------------------------------
# A tiny exactly solvable problem: 1 image, 2x2 cells, 3 classes; the
# expected reward is a sum over all 3**4 = 81 cell grids. Shared with
# test_psd_loss.py.
# ---------------------------------------------------------------------------
TARGET = torch.tensor([[0, 1], [1, 2]])


def _tiny_logits() -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    return torch.randn(1, C, 2, 2, generator=gen, dtype=torch.float64)


def _all_grids() -> torch.Tensor:
    """Every cell grid of the tiny problem, (81, 2, 2) long."""
    grids = list(itertools.product(range(C), repeat=4))
    return torch.tensor(grids).view(-1, 2, 2)


def _match_reward(actions: torch.Tensor) -> torch.Tensor:
    """Fraction of cells equal to TARGET, (...,) from (..., 2, 2)."""
    return (actions == TARGET).double().mean((-2, -1))


def _miou_reward(actions: torch.Tensor) -> torch.Tensor:
    """mIoU against TARGET over the classes present in either map."""
    ious, present = 0.0, 0.0
    for c in range(C):
        pred, ref = actions == c, TARGET == c
        inter = (pred & ref).sum((-2, -1)).double()
        union = (pred | ref).sum((-2, -1)).double()
        ious = ious + inter / union.clamp(min=1)
        present = present + (union > 0).double()
    return ious / present


REWARDS = dict(match=_match_reward, miou=_miou_reward)


def _grid_log_probs(z: torch.Tensor, grids: torch.Tensor) -> torch.Tensor:
    """log p(grid) = sum over cells of log pi(cell action), (G,)."""
    logp = F.log_softmax(z, 1)[0]  # (C, 2, 2)
    flat = logp.flatten(1)  # (C, 4)
    return flat.gather(0, grids.flatten(1)).sum(1)


def _expected_reward(z: torch.Tensor, reward) -> torch.Tensor:
    grids = _all_grids()
    return (_grid_log_probs(z, grids).exp() * reward(grids)).sum()


def _expected_reward_grad(reward) -> torch.Tensor:
    """Exact gradient of E[R] w.r.t. the tiny logits, (1, C, 2, 2)."""
    z = _tiny_logits().requires_grad_()
    _expected_reward(z, reward).backward()
    return z.grad


def _per_image_grads(loss, actions, rewards):
    """Loss gradients of one image's logits repeated over the batch.

    Every image of the batch has the tiny logits; returns their gradients
    (N, C, 2, 2) multiplied by N, so that each is the single-image estimate
    (the losses average over the valid images).
    """
    K, N = actions.shape[:2]
    logits = _tiny_logits().float().expand(N, -1, -1, -1).clone()
    logits.requires_grad_()
    valid = torch.ones(N, dtype=torch.bool)
    out = loss(PixelPolicy(logits), actions, rewards.float(), valid)
    out[loss.loss_name].backward()
    return logits.grad.double() * N


def _all_pairs():
    """Every ordered pair of grids as K=2 actions (2, 6561, 2, 2) and the
    probability of each pair under the tiny policy (6561,)."""
    grids = _all_grids()
    G = grids.shape[0]
    first = grids.repeat_interleave(G, 0)
    second = grids.repeat(G, 1, 1)
    logp = _grid_log_probs(_tiny_logits(), grids)
    prob = (logp.view(G, 1) + logp.view(1, G)).exp().flatten()
    return torch.stack([first, second]), prob


# ---------------------------------------------------------------------------
# Closed-form gradient against autograd of the naive surrogate
# ---------------------------------------------------------------------------


def _naive_advantages(rewards, valid, baseline, normalize, eps):
    """Advantages by loops over samples and images, as a K x B list."""
    K, B = rewards.shape
    R = rewards.tolist()
    images = [b for b in range(B) if valid[b]]
    batch_mean = statistics.fmean([R[k][b] for k in range(K)
                                   for b in images]) if images else 0.0
    A = [[0.0] * B for _ in range(K)]
    for b in images:
        for k in range(K):
            if baseline == 'group':
                base = statistics.fmean(R[j][b] for j in range(K))
            elif baseline == 'loo':
                base = statistics.fmean(R[j][b] for j in range(K) if j != k)
            elif baseline == 'batch':
                base = batch_mean
            else:
                base = 0.0
            A[k][b] = R[k][b] - base
    raw = [A[k][b] for k in range(K) for b in images]
    raw_std = statistics.pstdev(raw) if raw else 0.0
    if normalize == 'group':
        for b in images:
            std = statistics.pstdev(R[j][b] for j in range(K))
            for k in range(K):
                A[k][b] /= std + eps
    elif normalize == 'syncan':
        for b in images:
            for k in range(K):
                A[k][b] /= raw_std + eps
    return A, raw_std


def _naive_psr(z,
               actions,
               rewards,
               valid,
               baseline,
               normalize,
               entropy_weight,
               loss_weight,
               eps=1e-6,
               uniform_weight=0.0,
               uniform_floor=None,
               sampling_probs=None):
    """The PSR surrogate with loops; with ``sampling_probs`` (q, B C h w)
    each cell's log-probability is weighted by its ratio pi / q."""
    K, B, h, w = actions.shape
    A, raw_std = _naive_advantages(rewards, valid, baseline, normalize, eps)
    logp = F.log_softmax(z, 1)
    ratio = torch.ones_like(logp) if sampling_probs is None else \
        logp.detach().exp() / sampling_probs
    images = [b for b in range(B) if valid[b]]
    total = 0.0
    for k in range(K):
        for b in images:
            log_pi = sum(ratio[b, actions[k, b, i, j], i, j] *
                         logp[b, actions[k, b, i, j], i, j] for i in range(h)
                         for j in range(w))
            total = total - A[k][b] * log_pi
    norm = max(len(images), 1) * h * w
    surrogate = total / (K * norm)
    entropy = -(logp.exp() * logp).sum(1)  # (B, h, w)
    bonus = sum(entropy[b].sum() for b in images) / norm
    if uniform_floor is None:  # KL(uniform || pi)
        kl = -logp.mean(1) - math.log(logp.shape[1])
    else:  # only the classes below the floor
        kl = F.relu(math.log(uniform_floor) - logp).mean(1)
    floor = sum(kl[b].sum() for b in images) / norm
    return loss_weight * (surrogate - entropy_weight * bonus +
                          uniform_weight * floor), raw_std


def _random_problem(seed, K=4, B=2, h=4, w=4):
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(B, C, h, w, generator=gen)
    actions = torch.randint(0, C, (K, B, h, w), generator=gen)
    rewards = torch.rand(K, B, generator=gen)
    return z, actions, rewards


CONFIGS = [(b, n) for b in ('group', 'loo', 'batch', 'none')
           for n in ('none', 'group', 'syncan')
           if n != 'group' or b in ('group', 'loo')]


@pytest.mark.parametrize('baseline, normalize', CONFIGS)
@pytest.mark.parametrize('valid', [[True, True], [True, False]])
def test_closed_form_gradient_equals_autograd(baseline, normalize, valid):
    z, actions, rewards = _random_problem(1)
    valid = torch.tensor(valid)
    entropy_weight = 0.1 if baseline == 'batch' else 0.0
    uniform_weight = 0.3 if baseline in ('group', 'none') else 0.0
    uniform_floor = 0.2 if baseline == 'none' else None
    loss = PSRRewardLoss(
        baseline=baseline,
        normalize=normalize,
        entropy_weight=entropy_weight,
        uniform_weight=uniform_weight,
        uniform_floor=uniform_floor,
        loss_weight=0.7)
    logits = z.clone().requires_grad_()
    # sampling with a temperature and uniform mixing: every cell's credit
    # is weighted by its own ratio pi / q
    policy = PixelPolicy(logits, temperature=1.5, uniform_mix=0.1)
    out = loss(policy, actions, rewards, valid)
    out['loss_psr'].backward()

    ref_logits = z.clone().requires_grad_()
    q = 0.9 * torch.softmax(z / 1.5, 1) + 0.1 / C
    ref, raw_std = _naive_psr(ref_logits, actions, rewards, valid, baseline,
                              normalize, entropy_weight, 0.7,
                              uniform_weight=uniform_weight,
                              uniform_floor=uniform_floor,
                              sampling_probs=q)
    ref.backward()
    torch.testing.assert_close(logits.grad, ref_logits.grad)
    torch.testing.assert_close(out['loss_psr'], ref.detach())
    assert out['adv_std'].item() == pytest.approx(raw_std, rel=1e-5)
    assert logits.grad[0].abs().sum() > 0
    assert (logits.grad[~valid] == 0).all()
    assert 'loss' not in ''.join(k for k in out if k != loss.loss_name)


def test_rewards_shift_and_syncan_scale_invariance():
    """An in-image baseline ignores a per-image reward shift; SyncAN makes
    the gradient invariant to the reward scale."""
    z, actions, rewards = _random_problem(2)
    valid = torch.ones(2, dtype=torch.bool)

    def grad(loss, r):
        logits = z.clone().requires_grad_()
        loss(PixelPolicy(logits), actions, r, valid)['loss_psr'].backward()
        return logits.grad

    shifted = rewards + torch.tensor([3.0, -2.0])
    loo = PSRRewardLoss(baseline='loo', normalize='none')
    torch.testing.assert_close(grad(loo, rewards), grad(loo, shifted))
    syncan = PSRRewardLoss(baseline='batch', normalize='syncan')
    torch.testing.assert_close(
        grad(syncan, rewards),
        grad(syncan, 10 * rewards + 1),
        rtol=1e-4,
        atol=1e-6)
    plain = PSRRewardLoss(baseline='batch', normalize='none')
    assert not torch.allclose(grad(plain, rewards), grad(plain, 10 * rewards))


# ---------------------------------------------------------------------------
# Unbiasedness on the exactly solvable problem
# ---------------------------------------------------------------------------


@pytest.mark.parametrize('reward', ['match', 'miou'])
def test_loo_is_exactly_unbiased_by_enumeration(reward):
    """E over all 81**2 pairs of K=2 grids of the 'loo' gradient is exactly
    -1/cells grad E[R]; 'group' is (K-1)/K = 1/2 of it."""
    actions, prob = _all_pairs()
    rewards = REWARDS[reward](actions)
    exact = -_expected_reward_grad(REWARDS[reward]) / 4
    for baseline, factor in (('loo', 1.0), ('group', 0.5)):
        loss = PSRRewardLoss(baseline=baseline, normalize='none')
        grads = _per_image_grads(loss, actions, rewards)
        expected = (grads * prob.view(-1, 1, 1, 1)).sum(0, keepdim=True)
        torch.testing.assert_close(
            expected, factor * exact, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize('reward', ['match', 'miou'])
def test_loo_is_unbiased_monte_carlo(reward):
    """20000 independent K=2 draws: the mean 'loo' gradient is within
    N_SE standard errors of -1/cells grad E[R] in every component (SE =
    per-draw std / sqrt(20000)); 'group' gives exactly half of it and is
    told apart from the exact gradient."""
    N = 20000
    z = _tiny_logits().float().expand(N, -1, -1, -1)
    gen = torch.Generator().manual_seed(0)
    actions, _ = PixelPolicy(z).sample(2, generator=gen)
    rewards = REWARDS[reward](actions)
    exact = -_expected_reward_grad(REWARDS[reward]) / 4

    loo = _per_image_grads(
        PSRRewardLoss(baseline='loo', normalize='none'), actions, rewards)
    mean, se = loo.mean(0), loo.std(0) / math.sqrt(N)
    assert ((mean - exact[0]).abs() <= N_SE * se).all()

    group = _per_image_grads(
        PSRRewardLoss(baseline='group', normalize='none'), actions, rewards)
    torch.testing.assert_close(group, 0.5 * loo, rtol=1e-4, atol=1e-6)
    g_mean, g_se = group.mean(0), group.std(0) / math.sqrt(N)
    assert ((g_mean - 0.5 * exact[0]).abs() <= N_SE * g_se).all()
    assert ((g_mean - exact[0]).abs() > N_SE * g_se).any()


# ---------------------------------------------------------------------------
# Invalid images, sample counts, graph, arguments
# ---------------------------------------------------------------------------


@pytest.mark.parametrize('baseline, normalize', CONFIGS)
def test_all_invalid_gives_finite_zero_loss(baseline, normalize):
    z, actions, rewards = _random_problem(3)
    logits = z.clone().requires_grad_()
    valid = torch.zeros(2, dtype=torch.bool)
    out = PSRRewardLoss(
        baseline=baseline, normalize=normalize,
        entropy_weight=0.1)(PixelPolicy(logits), actions, rewards, valid)
    assert out['loss_psr'].item() == 0.0
    assert torch.isfinite(out['adv_std'])
    out['loss_psr'].backward()
    assert (logits.grad == 0).all()


def test_one_sample_per_image():
    z, actions, rewards = _random_problem(4, K=1)
    valid = torch.ones(2, dtype=torch.bool)
    for kwargs in (dict(baseline='loo'),
                   dict(baseline='group', normalize='group')):
        with pytest.raises(ValueError, match='num_samples'):
            PSRRewardLoss(**kwargs)(PixelPolicy(z), actions, rewards, valid)
    # a batch baseline works with K=1
    logits = z.clone().requires_grad_()
    out = PSRRewardLoss(baseline='batch')(PixelPolicy(logits), actions,
                                          rewards, valid)
    out['loss_psr'].backward()
    assert logits.grad.abs().sum() > 0


def test_backward_graph_holds_no_sample_tensors():
    """The loss is the closed-form gradient node: backward multiplies one
    (B, C, h, w) tensor, whatever K."""
    z = torch.randn(2, C, 4, 4)
    for K in (2, 16):
        logits = z.clone().requires_grad_()
        policy = PixelPolicy(logits)
        actions, _ = policy.sample(K)
        loss = PSRRewardLoss()(policy, actions, torch.rand(K, 2),
                               torch.ones(2, dtype=torch.bool))['loss_psr']
        node = loss.grad_fn
        assert type(node).__name__ == '_PrecomputedGradientBackward'
        assert [t.shape for t in node.saved_tensors] == [logits.shape]
        inputs = [f for f, _ in node.next_functions if f is not None]
        assert len(inputs) == 1 and inputs[0].variable is logits


def test_rejects_bad_inputs():
    z, actions, rewards = _random_problem(5)
    valid = torch.ones(2, dtype=torch.bool)
    loss = PSRRewardLoss()
    with pytest.raises(ValueError, match='image rewards'):
        loss(
            PixelPolicy(z), actions, rewards[..., None,
                                             None].expand(-1, -1, 4, 4), valid)
    with pytest.raises(ValueError, match='cell actions'):
        loss(PixelPolicy(z), actions[:, :, :2], rewards, valid)
    with pytest.raises(ValueError, match='valid'):
        loss(PixelPolicy(z), actions, rewards, valid.float())


@pytest.mark.parametrize('kwargs', [
    dict(baseline='mean'),
    dict(normalize='batch'),
    dict(baseline='batch', normalize='group'),
    dict(baseline='none', normalize='group'),
    dict(entropy_weight=-1.0),
    dict(uniform_weight=-1.0),
    dict(uniform_weight=0.1, uniform_floor=0.0),
    dict(eps=0.0),
    dict(loss_name='psr'),
])
def test_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        PSRRewardLoss(**kwargs)


def test_registry_and_interface():
    loss = MODELS.build(dict(type='PSRRewardLoss', loss_name='loss_psr_8'))
    assert isinstance(loss, PSRRewardLoss)
    assert loss.loss_name == 'loss_psr_8'
    assert PSRRewardLoss.level == 'image' and PSRRewardLoss.min_samples == 1


def test_shared_utils_are_the_pixel_loss_ones():
    from rss_mmseg.models.losses import pixel_reward_loss
    assert pixel_collapse_weights is collapse_weights
    assert pixel_reward_loss._PrecomputedGradient is _PrecomputedGradient


def test_uniform_weight_lifts_a_collapsed_class_where_entropy_does_not():
    """The KL(uniform || pi) pull on a class of probability ~0 stays
    ~gamma / C per cell; the entropy bonus's pull vanishes with pi."""
    z = torch.zeros(1, C, 2, 2)
    z[:, 0] = 30.0  # class 0 takes all the mass; the others ~1e-13
    actions = torch.zeros(2, 1, 2, 2, dtype=torch.long)
    rewards = torch.tensor([[0.5], [0.5]])  # no reward signal at all
    valid = torch.tensor([True])
    grads = {}
    for name, kwargs in [('uniform', dict(uniform_weight=1.0)),
                         ('entropy', dict(entropy_weight=1.0))]:
        logits = z.clone().requires_grad_()
        loss = PSRRewardLoss(baseline='group', normalize='none', **kwargs)
        loss(PixelPolicy(logits), actions, rewards, valid)['loss_psr'] \
            .backward()
        grads[name] = logits.grad
    cells = 4
    # descent raises every collapsed class by 1/C per cell (over the cells)
    torch.testing.assert_close(grads['uniform'][:, 1:],
                               torch.full((1, C - 1, 2, 2), -1 / (C * cells)))
    assert grads['entropy'][:, 1:].abs().max() < 1e-9


def test_uniform_floor_leaves_classes_above_it_alone():
    """With a floor, only classes below it are pulled; a policy whose
    classes are all above the floor gets no gradient from the term."""
    z = torch.tensor([4.0, 0.0, -9.0]).view(1, C, 1, 1).repeat(1, 1, 2, 2)
    actions = torch.zeros(2, 1, 2, 2, dtype=torch.long)
    rewards = torch.tensor([[0.5], [0.5]])
    valid = torch.tensor([True])

    def grad(floor):
        logits = z.clone().requires_grad_()
        PSRRewardLoss(
            baseline='group',
            normalize='none',
            uniform_weight=1.0,
            uniform_floor=floor)(PixelPolicy(logits), actions, rewards,
                                 valid)['loss_psr'].backward()
        return logits.grad

    probs = z.softmax(1)  # ~0.98, 0.018, 2.2e-6
    # floor 1e-3: only class 2 is pulled, (pi n - m) / C per cell / cells
    expected = (probs * 1 - torch.tensor([0.0, 0.0, 1.0]).view(1, C, 1, 1))
    torch.testing.assert_close(grad(1e-3), expected / (C * 4))
    assert (grad(1e-6) == 0).all()  # nothing below the floor
    assert grad(1e-3)[:, 2].max() < 0  # descent raises class 2
