"""PSDLoss: closed-form gradient, direction, empty regions, invalid images."""
import math

import pytest
import torch
import torch.nn.functional as F
from mmseg.registry import MODELS

from rss_mmseg.models.losses.psd_loss import (PSDLoss, pair_differences,
                                              pair_indices)
from rss_mmseg.models.policy import PixelPolicy
from tests.models.losses.test_psr_reward_loss import (
    REWARDS, _all_pairs, _expected_reward, _expected_reward_grad,
    _per_image_grads, _random_problem, _tiny_logits)


def _naive_psd(z,
               actions,
               rewards,
               valid,
               pairs,
               region_norm,
               normalize,
               entropy_weight,
               loss_weight,
               eps=1e-6,
               uniform_weight=0.0,
               uniform_floor=None):
    """The pair surrogate with loops, summed over D_kl explicitly."""
    K, B, h, w = actions.shape
    if pairs == 'all':
        pair_list = [(k, l) for k in range(K) for l in range(k + 1, K)]
    elif pairs == 'base':
        pair_list = [(0, l) for l in range(1, K)]
    else:
        pair_list = [(k, k + 1) for k in range(0, K, 2)]
    logp = F.log_softmax(z, 1)
    images = [b for b in range(B) if valid[b]]
    terms = []  # (delta, region, log-prob difference summed over D, image)
    for b in images:
        for k, l in pair_list:
            region = [(i, j) for i in range(h) for j in range(w)
                      if actions[k, b, i, j] != actions[l, b, i, j]]
            if not region:
                continue
            diff = sum(logp[b, actions[k, b, i, j], i, j] -
                       logp[b, actions[l, b, i, j], i, j] for i, j in region)
            delta = (rewards[k, b] - rewards[l, b]).item()
            terms.append((delta, len(region), diff, b))
    rms = (sum(d * d for d, _, _, _ in terms) / max(len(terms), 1))**0.5
    mean_region = sum(s for _, s, _, _ in terms) / max(len(terms), 1)
    total = 0.0
    for delta, size, diff, b in terms:
        if normalize == 'syncan':
            delta = delta / (rms + eps)
        elif normalize == 'group':
            delta = delta / (rewards[:, b].std(unbiased=False).item() + eps)
        if region_norm in (True, 'pair'):
            denom = size
        elif region_norm == 'mean':
            denom = size * h * w / mean_region
        else:
            denom = h * w
        total = total - delta / denom * diff / 2
    norm = max(len(images), 1)
    surrogate = total / (len(pair_list) * norm)
    entropy = -(logp.exp() * logp).sum(1)
    bonus = sum(entropy[b].sum() for b in images) / (norm * h * w)
    # KL(uniform || pi) per cell, averaged over the valid images' cells
    if uniform_floor is None:  # KL(uniform || pi)
        kl = -logp.mean(1) - math.log(logp.shape[1])
    else:  # only the classes below the floor
        kl = F.relu(math.log(uniform_floor) - logp).mean(1)
    floor = sum(kl[b].sum() for b in images) / (norm * h * w)
    return loss_weight * (surrogate - entropy_weight * bonus +
                          uniform_weight * floor), rms


@pytest.mark.parametrize('pairs', ['all', 'adjacent', 'base'])
@pytest.mark.parametrize('region_norm', [True, False, 'mean'])
@pytest.mark.parametrize('normalize', ['none', 'syncan', 'group'])
@pytest.mark.parametrize('valid', [[True, True], [True, False]])
def test_closed_form_gradient_equals_autograd(pairs, region_norm, normalize,
                                              valid):
    z, actions, rewards = _random_problem(1)
    # an identical pair (empty D) whose rewards still differ: contributes 0
    actions[1, 0] = actions[0, 0]
    # and a pair that differs in one cell
    actions[3, 1] = actions[2, 1]
    actions[3, 1, 0, 0] = (actions[2, 1, 0, 0] + 1) % 3
    valid = torch.tensor(valid)
    entropy_weight = 0.0 if region_norm is False else 0.1
    uniform_weight = 0.0 if normalize == 'none' else 0.3
    uniform_floor = 0.2 if normalize == 'group' else None
    loss = PSDLoss(
        pairs=pairs,
        region_norm=region_norm,
        normalize=normalize,
        entropy_weight=entropy_weight,
        uniform_weight=uniform_weight,
        uniform_floor=uniform_floor,
        loss_weight=0.7)
    logits = z.clone().requires_grad_()
    out = loss(PixelPolicy(logits), actions, rewards, valid)
    out['loss_psd'].backward()

    ref_logits = z.clone().requires_grad_()
    ref, rms = _naive_psd(ref_logits, actions, rewards, valid, pairs,
                          region_norm, normalize, entropy_weight, 0.7,
                          uniform_weight=uniform_weight,
                          uniform_floor=uniform_floor)
    ref.backward()
    torch.testing.assert_close(logits.grad, ref_logits.grad)
    torch.testing.assert_close(out['loss_psd'], ref.detach())
    assert out['adv_std'].item() == pytest.approx(rms, rel=1e-5)
    assert logits.grad[0].abs().sum() > 0
    assert (logits.grad[~valid] == 0).all()
    assert 'loss' not in ''.join(k for k in out if k != loss.loss_name)


def test_region_statistic():
    actions = torch.zeros(3, 2, 2, 5, dtype=torch.long)
    actions[1, 0, 0, :2] = 1  # pair (0, 1) differs in 2 of 10 cells
    actions[2, 0, 1] = 2  # pairs (0, 2) and (1, 2) in 5 and 7
    actions[2, 1, 0, 0] = 1  # image 1: 0, 1, 1 cells (invalid below)
    expected = torch.tensor([[2, 0], [5, 1], [7, 1]], dtype=torch.int32)
    for num_classes in (None, 3, 300):
        assert torch.equal(
            pair_differences(actions, 'all', num_classes), expected)
    assert torch.equal(
        pair_differences(actions[:2], 'adjacent', 3), expected[:1])
    with pytest.raises(ValueError, match='even'):
        pair_differences(actions, 'adjacent')
    policy = PixelPolicy(torch.zeros(2, 3, 2, 5))
    valid = torch.tensor([True, False])
    out = PSDLoss()(policy, actions, torch.rand(3, 2), valid)
    assert out['psd_region'].item() == pytest.approx(14 / 30)


def test_pair_differences_match_a_loop_over_pairs():
    gen = torch.Generator().manual_seed(7)
    actions = torch.randint(0, 3, (6, 2, 3, 4), generator=gen)
    for pairs in ('all', 'adjacent', 'base'):
        first, second = pair_indices(6, pairs)
        expected = torch.stack([(actions[k] != actions[l]).sum((-2, -1))
                                for k, l in zip(first, second)])
        assert torch.equal(pair_differences(actions, pairs, 3), expected.int())


def test_pair_indices():
    k, l = pair_indices(4, 'all')
    assert list(zip(k.tolist(), l.tolist())) == [(0, 1), (0, 2), (0, 3),
                                                 (1, 2), (1, 3), (2, 3)]
    k, l = pair_indices(4, 'adjacent')
    assert list(zip(k.tolist(), l.tolist())) == [(0, 1), (2, 3)]
    k, l = pair_indices(4, 'base')
    assert list(zip(k.tolist(), l.tolist())) == [(0, 1), (0, 2), (0, 3)]
    with pytest.raises(ValueError, match='even'):
        pair_indices(3, 'adjacent')


@pytest.mark.parametrize('reward', ['match', 'miou'])
@pytest.mark.parametrize('region_norm', [True, False])
def test_expected_direction_improves_expected_reward(reward, region_norm):
    """Exact expectation over all 81**2 pairs of K=2 grids: the expected
    PSD gradient is a descent direction of -E[R], and a small step along
    it raises the exact expected reward."""
    actions, prob = _all_pairs()
    loss = PSDLoss(region_norm=region_norm, normalize='none')
    grads = _per_image_grads(loss, actions, REWARDS[reward](actions))
    expected = (grads * prob.view(-1, 1, 1, 1)).sum(0, keepdim=True)
    ascent = _expected_reward_grad(REWARDS[reward])
    cosine = F.cosine_similarity(-expected.flatten(), ascent.flatten(), 0)
    assert cosine > 0.5
    z = _tiny_logits()
    step = 0.1 * expected / expected.norm()
    before = _expected_reward(z, REWARDS[reward])
    after = _expected_reward(z - step, REWARDS[reward])
    assert after > before


def test_syncan_is_scale_invariant_and_ignores_pair_order():
    z, actions, rewards = _random_problem(2)
    valid = torch.ones(2, dtype=torch.bool)

    def grad(loss, a, r):
        logits = z.clone().requires_grad_()
        loss(PixelPolicy(logits), a, r, valid)['loss_psd'].backward()
        return logits.grad

    loss = PSDLoss()
    ref = grad(loss, actions, rewards)
    torch.testing.assert_close(
        grad(loss, actions, 5 * rewards + 2), ref, rtol=1e-4, atol=1e-6)
    # reversing the samples reverses every pair: same loss
    torch.testing.assert_close(
        grad(loss, actions.flip(0), rewards.flip(0)),
        ref,
        rtol=1e-4,
        atol=1e-6)
    plain = PSDLoss(normalize='none')
    assert not torch.allclose(
        grad(plain, actions, rewards), grad(plain, actions, 5 * rewards))


@pytest.mark.parametrize('normalize', ['none', 'syncan'])
def test_all_invalid_gives_finite_zero_loss(normalize):
    z, actions, rewards = _random_problem(3)
    logits = z.clone().requires_grad_()
    valid = torch.zeros(2, dtype=torch.bool)
    out = PSDLoss(
        normalize=normalize, entropy_weight=0.1)(PixelPolicy(logits), actions,
                                                 rewards, valid)
    assert out['loss_psd'].item() == 0.0
    assert out['adv_std'].item() == 0.0 and out['psd_region'].item() == 0.0
    out['loss_psd'].backward()
    assert (logits.grad == 0).all()


def test_identical_samples_give_zero_gradient():
    z, actions, rewards = _random_problem(4)
    actions[:] = actions[:1]
    logits = z.clone().requires_grad_()
    out = PSDLoss()(PixelPolicy(logits), actions, rewards,
                    torch.ones(2, dtype=torch.bool))
    out['loss_psd'].backward()
    assert (logits.grad == 0).all() and out['psd_region'].item() == 0.0


def test_sample_count_errors():
    z, actions, rewards = _random_problem(5, K=1)
    valid = torch.ones(2, dtype=torch.bool)
    with pytest.raises(ValueError, match='min_samples=2') as err:
        PSDLoss()(PixelPolicy(z), actions, rewards, valid)
    assert 'model.decode_head.num_samples' in str(err.value)
    z, actions, rewards = _random_problem(5, K=3)
    with pytest.raises(ValueError, match='even'):
        PSDLoss(pairs='adjacent')(PixelPolicy(z), actions, rewards, valid)


def test_backward_graph_holds_no_sample_tensors():
    z = torch.randn(2, 3, 4, 4)
    for K in (2, 16):
        logits = z.clone().requires_grad_()
        policy = PixelPolicy(logits)
        actions, _ = policy.sample(K)
        loss = PSDLoss()(policy, actions, torch.rand(K, 2),
                         torch.ones(2, dtype=torch.bool))['loss_psd']
        node = loss.grad_fn
        assert type(node).__name__ == '_PrecomputedGradientBackward'
        assert [t.shape for t in node.saved_tensors] == [logits.shape]
        inputs = [f for f, _ in node.next_functions if f is not None]
        assert len(inputs) == 1 and inputs[0].variable is logits


@pytest.mark.parametrize('kwargs', [
    dict(pairs='random'),
    dict(normalize='batch'),
    dict(region_norm='cells'),
    dict(entropy_weight=-0.1),
    dict(uniform_weight=-0.1),
    dict(uniform_weight=0.1, uniform_floor=1.0),
    dict(eps=-1.0),
    dict(loss_name='psd'),
    dict(step='mirror'),
    dict(step='natural', natural_floor=0.0),
])
def test_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        PSDLoss(**kwargs)


@pytest.mark.parametrize('floor', [1e-3, 0.05])
def test_natural_step_moves_each_logit_by_its_class_advantage(floor):
    """One cell, reward = a known advantage per class, 20000 samples: the
    plain gradient moves each logit by pi_c (A_c - sum pi A), the natural
    step by (A_c - sum pi A) pi_c / max(pi_c, floor) (minus the mean over
    the classes), so the rare best class moves by its whole advantage."""
    probs = torch.tensor([0.6, 0.3, 0.09, 0.01])
    advantage = torch.tensor([0.0, 0.2, 0.1, 1.0])
    gen = torch.Generator().manual_seed(0)
    K = 20000
    actions = torch.multinomial(probs, K, True, generator=gen).view(K, 1, 1, 1)
    rewards = advantage[actions.view(K, 1)]
    valid = torch.ones(1, dtype=torch.bool)
    centred = advantage - (probs * advantage).sum()
    grads = {}
    for step in ('gradient', 'natural'):
        logits = probs.log().view(1, 4, 1, 1).requires_grad_()
        loss = PSDLoss(
            pairs='adjacent',
            region_norm='none',
            normalize='none',
            step=step,
            natural_floor=floor)
        loss(PixelPolicy(logits), actions, rewards, valid)['loss_psd'] \
            .backward()
        grads[step] = -logits.grad.flatten()
    natural = centred * probs / probs.clamp(min=floor)
    for step, expected in (('gradient', probs * centred),
                           ('natural', natural - natural.mean())):
        cosine = F.cosine_similarity(grads[step], expected, 0)
        assert cosine > 0.99, (step, grads[step], expected)
    # the rare best class: a small share of the plain step, the largest
    # move of the natural one
    assert grads['gradient'].argmax() == 1
    assert grads['natural'].argmax() == 3


def test_loss_weight_is_the_size_of_the_natural_step():
    """``loss_weight`` scales the whole natural step (credit, entropy bonus
    and uniform pull alike), the knob of ``natural-16-x16``."""
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 5, 3, 3, generator=gen)
    actions = torch.randint(0, 5, (4, 2, 3, 3), generator=gen)
    rewards = torch.rand(4, 2, generator=gen)
    valid = torch.ones(2, dtype=torch.bool)
    grads = []
    for weight in (1.0, 16.0):
        leaf = logits.clone().requires_grad_()
        loss = PSDLoss(
            step='natural',
            entropy_weight=0.01,
            uniform_weight=0.003,
            loss_weight=weight)
        loss(PixelPolicy(leaf), actions, rewards, valid)['loss_psd'] \
            .backward()
        grads.append(leaf.grad)
    assert grads[0].abs().max() > 0
    torch.testing.assert_close(grads[1], 16 * grads[0])


@pytest.mark.parametrize('step', ['gradient', 'natural'])
def test_exploration_changes_what_is_sampled_not_the_step(step):
    """Samples from q = 0.5 pi + 0.5 uniform (the head's uniform_mix), each
    cell's credit weighted by pi / q: the plain gradient still moves each
    logit by pi_c (A_c - sum pi A), the on-policy expectation, and the
    natural step (floor 1e-4) by the centred A_c - sum q A, so the class pi
    gives 1e-4 moves by its whole advantage (without the ratio by ~1250x
    it, dividing by q instead of pi by ~1e-3x)."""
    probs = torch.tensor([0.6, 0.3, 0.0999, 0.0001])
    advantage = torch.tensor([0.0, 0.2, 0.1, 1.0])
    logits = probs.log().view(1, 4, 1, 1).requires_grad_()
    policy = PixelPolicy(logits, uniform_mix=0.5)
    q = policy.sampling_probs.flatten()
    gen = torch.Generator().manual_seed(0)
    K = 20000
    actions = torch.multinomial(q, K, True, generator=gen).view(K, 1, 1, 1)
    rewards = advantage[actions.view(K, 1)]
    loss = PSDLoss(
        pairs='adjacent',
        region_norm='none',
        normalize='none',
        step=step,
        natural_floor=1e-4)
    loss(policy, actions, rewards, torch.ones(1, dtype=torch.bool))[
        'loss_psd'].backward()
    moved = -logits.grad.flatten()
    if step == 'gradient':
        expected = probs * (advantage - (probs * advantage).sum())
    else:
        natural = (advantage - (q * advantage).sum()) * probs / probs.clamp(
            min=loss.natural_floor)
        expected = natural - natural.mean()
    # each sample's weight is half its pair's reward difference and the
    # surrogate is a mean over the K / 2 pairs: the step is the expectation
    # itself, not only its direction
    torch.testing.assert_close(
        moved, expected, atol=0.05 * expected.abs().max().item(), rtol=0)
    assert moved.argmax() == (1 if step == 'gradient' else 3)


def test_registry_and_interface():
    loss = MODELS.build(dict(type='PSDLoss', pairs='adjacent'))
    assert isinstance(loss, PSDLoss) and loss.loss_name == 'loss_psd'
    assert PSDLoss.level == 'image' and PSDLoss.min_samples == 2


def test_cell_normalized_pair_of_two_is_loo_reinforce():
    """K=2, region_norm=False: -(R1-R2)/(2n) (log p1 - log p2) is exactly
    PSRRewardLoss with the leave-one-out baseline (hence unbiased)."""
    from rss_mmseg.models.losses.psr_reward_loss import PSRRewardLoss
    z, actions, rewards = _random_problem(6, K=2)
    valid = torch.tensor([True, False])
    grads = []
    for loss in (PSDLoss(region_norm=False, normalize='none'),
                 PSRRewardLoss(baseline='loo', normalize='none')):
        logits = z.clone().requires_grad_()
        loss(PixelPolicy(logits), actions, rewards,
             valid)[loss.loss_name].backward()
        grads.append(logits.grad)
    torch.testing.assert_close(grads[0], grads[1])
    assert grads[0].abs().sum() > 0


def test_local_variants_learn_only_inside_their_blocks():
    """With pairs='base' on local variants, each pair differs only inside
    its block, so the gradient is zero on the cells no block covered."""
    from rss_mmseg.models.pair_sampling import sample_local_variants
    gen = torch.Generator().manual_seed(8)
    logits = torch.randn(3, 4, 8, 8, generator=gen).requires_grad_()
    policy = PixelPolicy(logits)
    actions, mask = sample_local_variants(
        policy.probs, 4, (2, 3), generator=gen, return_mask=True)
    out = PSDLoss(pairs='base')(policy, actions,
                                torch.rand(4, 3, generator=gen),
                                torch.ones(3, dtype=torch.bool))
    out['loss_psd'].backward()
    covered = mask.any(0).unsqueeze(1).expand_as(logits)
    # zero up to rounding: there the sample weights sum to 0 on one class
    scale = logits.grad[covered].abs().max()
    assert scale > 0
    assert (logits.grad[~covered].abs() <= 1e-6 * scale).all()
    assert 0 < out['psd_region'].item() <= 6 / 64
