"""LocalExpectationLoss: exact one-cell credit, an unbiased policy gradient.

The strongest check is by enumeration on a problem small enough to list
every action map: the expectation of the loss's gradient over the sampled
map equals the exact gradient of the expected reward.
"""
import itertools

import pytest
import torch

from rss_mmseg.models.losses import LocalExpectationLoss
from rss_mmseg.models.policy import PixelPolicy, upsample_actions
from rss_mmseg.models.rewards import ImageMIoUReward
from tests.models.utils import make_data_samples

C = 3


def setup(seed=0, images=1, grid=(2, 2), size=(4, 4)):
    gen = torch.Generator().manual_seed(seed)
    reference = torch.randint(0, C, (images, *size), generator=gen)
    logits = torch.randn(images, C, *grid, generator=gen)
    return make_data_samples(reference), logits


def loss_gradient(loss, logits, actions, samples, reward):
    logits = logits.clone().requires_grad_()
    rewards, valid, gains = reward.score_cell_variants(actions, samples)
    out = loss(PixelPolicy(logits), actions, rewards, valid, gains=gains)
    grad, = torch.autograd.grad(out[loss.loss_name], logits)
    return grad


def test_expected_gradient_equals_the_exact_policy_gradient():
    """sum_a P(a) grad(a) = d/dz E_a[R(a)] / cells, over all 3^4 maps."""
    samples, logits = setup()
    reward = ImageMIoUReward(num_classes=C)
    loss = LocalExpectationLoss(normalize='none')
    z = logits.clone().requires_grad_()
    log_probs = torch.log_softmax(z, 1)
    exact, estimate = 0.0, torch.zeros_like(logits)
    for flat in itertools.product(range(C), repeat=4):
        actions = torch.tensor(flat).view(1, 1, 2, 2)
        log_p = log_probs.gather(1, actions[0].unsqueeze(1)).sum()
        value, _ = reward(upsample_actions(actions, (4, 4)), samples)
        exact = exact + log_p.exp() * value[0, 0]
        estimate += log_p.exp().detach() * loss_gradient(
            loss, logits, actions, samples, reward)
    exact_grad, = torch.autograd.grad(-exact / 4, z)  # mean over 4 cells
    assert torch.allclose(estimate, exact_grad, atol=1e-6)
    assert exact_grad.abs().max() > 1e-3


@pytest.mark.parametrize('normalize', ['cells', 'syncan', 'group', 'none'])
def test_gradient_is_minus_pi_times_centred_gains(normalize):
    samples, logits = setup(seed=1, images=2, grid=(4, 4), size=(8, 8))
    reward = ImageMIoUReward(num_classes=C)
    actions = PixelPolicy(logits).sample(3)[0]
    loss = LocalExpectationLoss(normalize=normalize, loss_weight=2.0)
    grad = loss_gradient(loss, logits, actions, samples, reward)
    rewards, valid, gains = reward.score_cell_variants(actions, samples)
    z = logits.clone().requires_grad_()
    advantage = loss.normalized_gains(gains, valid)
    surrogate = -2.0 * (torch.softmax(z, 1) * advantage).sum() / (2 * 16)
    expected, = torch.autograd.grad(surrogate, z)
    assert torch.allclose(grad, expected, atol=1e-7)
    if normalize == 'cells':
        assert torch.allclose(advantage, gains.mean(0) * 16)
    if normalize == 'syncan':
        rms = gains.square().mean().sqrt()
        assert torch.allclose(advantage, gains.mean(0) / rms, atol=1e-6)


def test_invalid_images_get_no_gradient_and_the_uniform_pull_acts():
    samples, logits = setup(seed=2, images=2, grid=(4, 4), size=(8, 8))
    reward = ImageMIoUReward(num_classes=C)
    actions = PixelPolicy(logits).sample(2)[0]
    rewards, valid, gains = reward.score_cell_variants(actions, samples)
    valid = torch.tensor([True, False])
    for weight in (0.0, 0.5):
        loss = LocalExpectationLoss(uniform_weight=weight)
        z = logits.clone().requires_grad_()
        out = loss(PixelPolicy(z), actions, rewards, valid, gains=gains)
        grad, = torch.autograd.grad(out['loss_local'], z)
        assert (grad[1] == 0).all() and grad[0].abs().max() > 0
        if weight:
            pull = (torch.softmax(logits, 1) - 1 / C)[0] * weight / 16
            assert torch.allclose(grad[0] - base, pull, atol=1e-7)
        base = grad[0]


def test_a_better_class_gets_probability():
    """Gradient steps on the surrogate raise the expected reward."""
    samples, logits = setup(seed=3, images=2, grid=(4, 4), size=(8, 8))
    reward = ImageMIoUReward(num_classes=C)
    loss = LocalExpectationLoss()
    z = logits.clone().requires_grad_()

    def expected_reward():
        torch.manual_seed(1)
        actions = PixelPolicy(z.detach()).sample(512)[0]
        return reward.score_cells(actions, samples)[0].mean()

    torch.manual_seed(0)
    before = expected_reward()
    for _ in range(40):
        actions = PixelPolicy(z.detach()).sample(2)[0]
        rewards, valid, gains = reward.score_cell_variants(actions, samples)
        out = loss(PixelPolicy(z), actions, rewards, valid, gains=gains)
        grad, = torch.autograd.grad(out['loss_local'], z)
        z = (z - 20.0 * grad).detach().requires_grad_()
    after = expected_reward()
    assert after > before + 0.1, (before, after)


def test_bad_arguments_fail_with_the_fix():
    with pytest.raises(ValueError, match='normalize'):
        LocalExpectationLoss(normalize='batch')
    with pytest.raises(ValueError, match='loss_'):
        LocalExpectationLoss(loss_name='local')
    samples, logits = setup()
    with pytest.raises(ValueError, match='do not match the cell logits'):
        LocalExpectationLoss()(PixelPolicy(logits),
                               torch.zeros(1, 1, 2, 2, dtype=torch.long),
                               torch.zeros(1, 1), torch.ones(1, dtype=bool),
                               gains=torch.zeros(1, 1, C, 4, 4))


def test_mirror_step_is_the_gradient_for_small_steps_and_full_for_large():
    samples, logits = setup(seed=4, images=2, grid=(4, 4), size=(8, 8))
    reward = ImageMIoUReward(num_classes=C)
    actions = PixelPolicy(logits).sample(2)[0]
    gradient = loss_gradient(LocalExpectationLoss(), logits, actions,
                             samples, reward)
    hot = 1e3
    mirror = loss_gradient(
        LocalExpectationLoss(step='mirror', temperature=hot), logits,
        actions, samples, reward)
    assert torch.allclose(mirror * hot, gradient, rtol=1e-2, atol=1e-5)
    # a cold step moves each cell onto its best class: pi - onehot(best)
    cold = loss_gradient(
        LocalExpectationLoss(step='mirror', temperature=1e-4), logits,
        actions, samples, reward)
    rewards, valid, gains = reward.score_cell_variants(actions, samples)
    best = gains.mean(0).argmax(1, keepdim=True)  # (B, 1, h, w)
    onehot = torch.zeros_like(logits).scatter_(1, best, 1.0)
    expected = (torch.softmax(logits, 1) - onehot) / (2 * 16)
    decided = gains.mean(0).topk(2, 1).values.diff(dim=1).abs() > 1e-3
    assert torch.allclose(cold * decided, expected * decided, atol=1e-6)
    with pytest.raises(ValueError, match='step'):
        LocalExpectationLoss(step='natural')
