"""Sampling action maps from per-pixel class probabilities."""
import math

import pytest
import torch

from rss_mmseg.models.policy import (MIN_SAMPLING_PROB, PixelPolicy,
                                     action_log_prob, gather_actions,
                                     sample_gumbel_max, sample_inverse_cdf)


def _logits(C=5, P=6, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(1, C, 1, P, generator=gen) * 1.5


def _counts(actions, C):
    """Class counts per pixel: (C, ...) from (K, ...) actions."""
    return torch.stack([(actions == c).sum(0) for c in range(C)]).double()


def _assert_chi_square(actions, probs):
    """Pearson's chi-square over all pixels against the expected counts.

    Sum over P pixels of chi2(C-1) statistics is chi2(P*(C-1)); for this
    many degrees of freedom it is close to normal, so a threshold of the
    mean plus 5 standard deviations fails a correct sampler with
    probability ~1e-6 and a sampler off by a few percent surely.
    """
    K = actions.shape[0]
    C = probs.shape[1]
    expected = K * probs[0].double().reshape(C, -1)  # (C, P)
    observed = _counts(actions[:, 0].reshape(K, -1), C)
    assert expected.min() >= 5, 'too few expected counts for chi-square'
    stat = ((observed - expected)**2 / expected).sum().item()
    df = expected.shape[1] * (C - 1)
    assert stat < df + 5 * math.sqrt(2 * df), (stat, df)


@pytest.mark.parametrize('stratified', [False, True])
def test_inverse_cdf_frequencies_match_softmax(stratified):
    z = _logits()
    probs = torch.softmax(z, 1)
    gen = torch.Generator().manual_seed(1)
    actions = sample_inverse_cdf(probs, 20000, stratified, generator=gen)
    assert actions.shape == (20000, 1, 1, 6) and actions.dtype == torch.long
    _assert_chi_square(actions, probs)


def test_inverse_cdf_detects_wrong_distribution():
    z = _logits()
    probs = torch.softmax(z, 1)
    actions = sample_inverse_cdf(
        probs, 20000, generator=torch.Generator().manual_seed(1))
    wrong = torch.softmax(z * 1.1, 1)  # a slightly sharper distribution
    with pytest.raises(AssertionError):
        _assert_chi_square(actions, wrong)


def test_gumbel_max_frequencies_match_softmax():
    z = _logits()
    actions = sample_gumbel_max(
        z, 20000, generator=torch.Generator().manual_seed(2))
    _assert_chi_square(actions, torch.softmax(z, 1))


def test_stratified_counts_within_one_of_expectation():
    z = _logits(C=5, P=40)
    probs = torch.softmax(z, 1)
    K = 16
    actions = sample_inverse_cdf(
        probs, K, stratified=True, generator=torch.Generator().manual_seed(3))
    observed = _counts(actions[:, 0], 5)  # (C, 1, P)
    expected = K * probs[0].double()
    assert (observed - expected).abs().max() < 1 + 1e-4


def test_degenerate_probabilities():
    z = torch.full((2, 300, 3, 3), -1e4)  # more classes than uint8 holds
    z[:, 299] = 0.0
    z[1, :, 0, 0] = -1e4
    z[1, 7, 0, 0] = 0.0
    actions = sample_inverse_cdf(torch.softmax(z, 1), 4)
    assert (actions[:, 0] == 299).all()
    assert (actions[:, 1, 0, 0] == 7).all()
    assert (actions[:, 1].reshape(4, -1)[:, 1:] == 299).all()


def test_sampling_policy_temperature_and_uniform_mix():
    z = _logits()
    policy = PixelPolicy(z, temperature=2.0, uniform_mix=0.2)
    assert not policy.on_policy
    expected = 0.8 * torch.softmax(z / 2.0, 1) + 0.2 / 5
    torch.testing.assert_close(policy.sampling_probs, expected)
    torch.testing.assert_close(policy.probs, torch.softmax(z, 1))
    actions, q = policy.sample(
        20000, generator=torch.Generator().manual_seed(4))
    _assert_chi_square(actions, expected)
    torch.testing.assert_close(q, gather_actions(expected, actions))
    on_policy = PixelPolicy(z)
    assert on_policy.on_policy and on_policy.sampling_probs is on_policy.probs


def test_sampling_prob_is_floored():
    z = torch.tensor([0.0, -200.0]).view(1, 2, 1, 1)
    policy = PixelPolicy(z)
    q = policy.sampling_prob(torch.ones(1, 1, 1, 1, dtype=torch.long))
    assert q.item() == MIN_SAMPLING_PROB


def test_log_prob_and_entropy():
    z = _logits().requires_grad_()
    policy = PixelPolicy(z)
    actions, _ = policy.sample(3, generator=torch.Generator().manual_seed(5))
    log_pi = policy.log_prob(actions)
    assert log_pi.shape == (3, 1, 1, 6) and log_pi.requires_grad
    expected = torch.log_softmax(z, 1)[0, actions[:, 0, 0], 0,
                                       torch.arange(6)]
    torch.testing.assert_close(log_pi[:, 0, 0], expected)
    torch.testing.assert_close(action_log_prob(z, actions), log_pi)
    torch.testing.assert_close(policy.prob(actions), log_pi.detach().exp())
    p = torch.softmax(z.detach(), 1)
    torch.testing.assert_close(policy.entropy(), -(p * p.log()).sum(1))


@pytest.mark.parametrize('kwargs', [
    dict(temperature=0.0),
    dict(uniform_mix=1.0),
    dict(uniform_mix=-0.1),
])
def test_policy_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        PixelPolicy(_logits(), **kwargs)
    with pytest.raises(ValueError):
        PixelPolicy(torch.zeros(2, 3, 4))
