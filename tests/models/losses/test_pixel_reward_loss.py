"""PixelRewardLoss: unbiasedness, ignored pixels, closed-form gradient."""
import math

import pytest
import torch
import torch.nn.functional as F

from rss_mmseg.models import (PixelMatchReward, PixelPolicy, PixelRewardLoss,
                              collapse_weights)
from tests.models.utils import make_data_samples

C = 4
N_SE = 5  # tolerance in standard errors of the Monte-Carlo mean


def _problem():
    """Fixed logits (1, C, 2, 3) far from uniform; one ignored pixel."""
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(1, C, 2, 3, generator=gen) * 1.5
    labels = torch.tensor([[[0, 1, 2], [3, 255, 1]]])
    return z, labels


def _mc_gradient(loss_kwargs=None, policy_kwargs=None, reward_kwargs=None,
                 num_samples=2000, repeats=40, stratified=False, seed=0):
    """Mean and standard error of the loss gradient w.r.t. the logits.

    Each of ``repeats`` independent calls averages ``num_samples`` samples
    per pixel; the standard error of the mean over the repeats is estimated
    from their spread, so the tolerance follows from the sample count.
    """
    z, labels = _problem()
    samples = make_data_samples(labels)
    loss = PixelRewardLoss(**(loss_kwargs or {}))
    reward = PixelMatchReward(**(reward_kwargs or {}))
    gen = torch.Generator().manual_seed(seed)
    grads = []
    for _ in range(repeats):
        logits = z.clone().requires_grad_()
        policy = PixelPolicy(logits, **(policy_kwargs or {}))
        actions, _ = policy.sample(num_samples, stratified, generator=gen)
        rewards, valid = reward(actions, samples)
        loss(policy, actions, rewards, valid)[loss.loss_name].backward()
        grads.append(logits.grad.double().flatten())
    grads = torch.stack(grads)
    return grads.mean(0), grads.std(0) / math.sqrt(repeats)


def _matches(mean, se, target):
    return bool(((mean - target.flatten()).abs() <= N_SE * se + 1e-7).all())


def _analytic(objective):
    """Gradient w.r.t. the logits of ``objective(z, labels)``."""
    z, labels = _problem()
    z.requires_grad_()
    objective(z, labels).backward()
    return z.grad.double()


def _ce(z, labels):
    """mmseg's CrossEntropyLoss: mean over all pixels, ignored give 0."""
    return F.cross_entropy(
        z, labels, ignore_index=255, reduction='none').mean()


def _reward_table(labels, correct, wrong):
    """r(a) for every class a: (1, C, H, W), 0 on ignored pixels."""
    valid = labels != 255
    onehot = F.one_hot(labels.clamp(max=C - 1), C).permute(0, 3, 1, 2)
    table = wrong + (correct - wrong) * onehot.float()
    return table * valid.unsqueeze(1)


def _generalized(power, correct=1.0, wrong=0.0):
    """-1/N sum_a r(a) pi(a)**(1-p) / (1-p) (log pi(a) for p=1)."""

    def objective(z, labels):
        r = _reward_table(labels, correct, wrong)
        if power == 1.0:
            terms = r * F.log_softmax(z, 1)
        else:
            terms = r * torch.softmax(z, 1)**(1 - power) / (1 - power)
        return -terms.sum() / labels.numel()

    return objective


def test_importance_weighted_reward_is_unbiased_cross_entropy():
    mean, se = _mc_gradient(dict(baseline='none'))
    assert _matches(mean, se, _analytic(_ce))
    # and is distinguishable from REINFORCE's gradient (pi(y) x CE)
    assert not _matches(mean, se, _analytic(_generalized(0.0)))


@pytest.mark.parametrize('loss_kwargs, policy_kwargs, stratified', [
    (dict(baseline='mean'), dict(), False),
    (dict(baseline='loo'), dict(), False),
    (dict(baseline='mean'), dict(temperature=2.0, uniform_mix=0.1), False),
    (dict(baseline='loo'), dict(temperature=2.0, uniform_mix=0.1), False),
    (dict(baseline='none'), dict(temperature=3.0), False),
    (dict(baseline='mean'), dict(), True),
])
def test_cross_entropy_with_baselines_and_exploration(loss_kwargs,
                                                      policy_kwargs,
                                                      stratified):
    mean, se = _mc_gradient(loss_kwargs, policy_kwargs, stratified=stratified)
    assert _matches(mean, se, _analytic(_ce))


def test_reinforce_is_gradient_of_expected_reward():
    mean, se = _mc_gradient(dict(baseline='none', iw_power=0.0))
    assert _matches(mean, se, _analytic(_generalized(0.0)))
    assert not _matches(mean, se, _analytic(_ce))
    rewards = dict(correct=1.0, wrong=-0.5)
    mean, se = _mc_gradient(
        dict(baseline='mean', iw_power=0.0), reward_kwargs=rewards)
    assert _matches(mean, se, _analytic(_generalized(0.0, 1.0, -0.5)))


def test_partial_importance_weight_off_policy():
    mean, se = _mc_gradient(
        dict(iw_power=0.5), policy_kwargs=dict(temperature=1.5))
    assert _matches(mean, se, _analytic(_generalized(0.5)))


def test_importance_weighted_general_rewards():
    rewards = dict(correct=1.0, wrong=-1.0)
    mean, se = _mc_gradient(dict(baseline='mean'), reward_kwargs=rewards)
    assert _matches(mean, se, _analytic(_generalized(1.0, 1.0, -1.0)))


def test_baseline_before_importance_weight_is_biased():
    """(r/q - b) is unbiased; (r - b)/q pulls towards uniform (and the
    test tells the two apart)."""
    z, labels = _problem()
    samples = make_data_samples(labels)
    reward = PixelMatchReward()
    gen = torch.Generator().manual_seed(0)
    b = 1.0
    grads = {'after': [], 'before': []}
    for _ in range(40):
        policy = PixelPolicy(z)
        actions, q = policy.sample(2000, generator=gen)
        r, valid = reward(actions, samples)
        for order, adv in (('after', r / q - b), ('before', (r - b) / q)):
            adv = adv * valid
            logits = z.clone().requires_grad_()
            W = collapse_weights(actions, adv, C)
            (-(W * F.log_softmax(logits, 1)).sum() / labels.numel()).backward()
            grads[order].append(logits.grad.double().flatten())
    ce = _analytic(_ce)
    for order, expect in (('after', True), ('before', False)):
        g = torch.stack(grads[order])
        assert _matches(g.mean(0), g.std(0) / math.sqrt(40), ce) is expect


@pytest.mark.parametrize('baseline', ['none', 'mean', 'loo', 'syncan'])
@pytest.mark.parametrize('entropy_weight', [0.0, 0.1])
def test_closed_form_gradient_equals_autograd(baseline, entropy_weight):
    gen = torch.Generator().manual_seed(1)
    z = torch.randn(2, C, 5, 6, generator=gen)
    labels = torch.randint(0, C, (2, 5, 6), generator=gen)
    labels[0, 0] = 255
    samples = make_data_samples(labels)
    loss = PixelRewardLoss(
        baseline=baseline, entropy_weight=entropy_weight, loss_weight=0.7)
    logits = z.clone().requires_grad_()
    policy = PixelPolicy(logits, temperature=1.3)
    actions, _ = policy.sample(3, generator=gen)
    rewards, valid = PixelMatchReward(correct=2.0, wrong=-1.0)(actions,
                                                               samples)
    out = loss(policy, actions, rewards, valid)
    out['loss_pixel_reward'].backward()

    ref_logits = z.clone().requires_grad_()
    adv, _ = loss.advantages(policy, actions, rewards, valid)
    logp = F.log_softmax(ref_logits, 1)
    entropy = -(logp.exp() * logp).sum(1) * valid
    N = labels.numel()
    ref = 0.7 * (-(collapse_weights(actions, adv, C) * logp).sum() / N -
                 entropy_weight * entropy.sum() / N)
    ref.backward()
    torch.testing.assert_close(logits.grad, ref_logits.grad)
    torch.testing.assert_close(out['loss_pixel_reward'], ref.detach())
    assert 'loss' not in ''.join(k for k in out if k != loss.loss_name)


@pytest.mark.parametrize('baseline', ['none', 'mean', 'loo', 'syncan'])
@pytest.mark.parametrize('avg_non_ignore', [False, True])
def test_ignored_pixels_get_zero_gradient(baseline, avg_non_ignore):
    gen = torch.Generator().manual_seed(2)
    labels = torch.randint(0, C, (2, 4, 4), generator=gen)
    labels[0, :2] = 255
    labels[1] = 255  # an all-ignored image
    samples = make_data_samples(labels)
    logits = torch.randn(2, C, 4, 4, generator=gen).requires_grad_()
    policy = PixelPolicy(logits)
    actions, _ = policy.sample(2, generator=gen)
    rewards, valid = PixelMatchReward(wrong=-1.0)(actions, samples)
    loss = PixelRewardLoss(
        baseline=baseline, entropy_weight=0.1, avg_non_ignore=avg_non_ignore)
    loss(policy, actions, rewards, valid)['loss_pixel_reward'].backward()
    ignored = (labels == 255).unsqueeze(1).expand_as(logits)
    assert (logits.grad[ignored] == 0).all()
    assert logits.grad[~ignored].abs().sum() > 0


@pytest.mark.parametrize('baseline', ['none', 'mean', 'loo', 'syncan'])
@pytest.mark.parametrize('avg_non_ignore', [False, True])
def test_all_ignored_batch_gives_finite_zero_loss(baseline, avg_non_ignore):
    labels = torch.full((2, 4, 4), 255)
    samples = make_data_samples(labels)
    logits = torch.randn(2, C, 4, 4).requires_grad_()
    policy = PixelPolicy(logits)
    actions, _ = policy.sample(2)
    rewards, valid = PixelMatchReward()(actions, samples)
    out = PixelRewardLoss(
        baseline=baseline, entropy_weight=0.1,
        avg_non_ignore=avg_non_ignore)(policy, actions, rewards, valid)
    loss = out['loss_pixel_reward']
    assert torch.isfinite(loss) and loss.item() == 0.0
    assert torch.isfinite(out['adv_std'])
    loss.backward()
    assert (logits.grad == 0).all()


def test_syncan_advantages_have_unit_std():
    gen = torch.Generator().manual_seed(3)
    labels = torch.randint(0, C, (2, 8, 8), generator=gen)
    labels[:, 0] = 255
    samples = make_data_samples(labels)
    policy = PixelPolicy(torch.randn(2, C, 8, 8, generator=gen))
    actions, _ = policy.sample(2, generator=gen)
    rewards, valid = PixelMatchReward()(actions, samples)
    loss = PixelRewardLoss(baseline='syncan')
    adv, std = loss.advantages(policy, actions, rewards, valid)
    mask = valid.expand_as(adv)
    assert abs(adv[mask].mean().item()) < 1e-5
    assert abs(adv[mask].std(unbiased=False).item() - 1) < 1e-4
    assert abs(std.item() - 1) < 1e-4
    assert (adv[~mask] == 0).all()


def test_importance_weights_and_clipping():
    policy = PixelPolicy(torch.tensor([0.0, -5.0]).view(1, 2, 1, 1))
    actions = torch.ones(1, 1, 1, 1, dtype=torch.long)
    pi = 1 / (1 + math.exp(5.0))
    w, rho = PixelRewardLoss().importance_weights(policy, actions)
    assert rho is None and w.item() == pytest.approx(1 / pi, rel=1e-5)
    w, _ = PixelRewardLoss(clip_weight=10.0).importance_weights(
        policy, actions)
    assert w.item() == pytest.approx(10.0, rel=1e-5)
    assert PixelRewardLoss(iw_power=0.0).importance_weights(
        policy, actions) == (None, None)
    # off-policy: w = pi^(1-p) / q and rho = pi / q
    policy = PixelPolicy(policy.logits, temperature=2.0)
    q = policy.sampling_probs[0, 1, 0, 0].item()
    w, rho = PixelRewardLoss(iw_power=0.5).importance_weights(
        policy, actions)
    assert w.item() == pytest.approx(pi**0.5 / q, rel=1e-5)
    assert rho.item() == pytest.approx(pi / q, rel=1e-5)


@pytest.mark.parametrize('kwargs', [
    dict(baseline='median'),
    dict(iw_power=1.5),
    dict(clip_weight=0.0),
    dict(loss_name='pixel_reward'),
])
def test_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        PixelRewardLoss(**kwargs)


def test_loo_needs_two_samples():
    labels = torch.zeros(1, 2, 2, dtype=torch.long)
    policy = PixelPolicy(torch.randn(1, C, 2, 2))
    actions, _ = policy.sample(1)
    rewards, valid = PixelMatchReward()(actions, make_data_samples(labels))
    with pytest.raises(ValueError, match='num_samples'):
        PixelRewardLoss(baseline='loo')(policy, actions, rewards, valid)


def test_loss_name():
    assert PixelRewardLoss().loss_name == 'loss_pixel_reward'
    assert PixelRewardLoss(loss_name='loss_px').loss_name == 'loss_px'
