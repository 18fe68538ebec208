"""EntropyControl: a fixed entropy bonus, or one adapted to a target."""
import math

import pytest
import torch

from rss_mmseg.models.losses import PSDLoss, PSRRewardLoss
from rss_mmseg.models.losses.entropy_control import EntropyControl
from rss_mmseg.models.policy import PixelPolicy


def policy_with_entropy(sharpness: float, num_classes: int = 4):
    """A (2, C, 3, 3) cell policy; larger sharpness, lower entropy."""
    logits = torch.zeros(2, num_classes, 3, 3)
    logits[:, 0] = sharpness
    return PixelPolicy(logits)


def test_fixed_weight_is_not_state_and_logs_nothing():
    control = EntropyControl(0.01)
    assert control.active and 'weight' not in control.state_dict()
    assert control.step(policy_with_entropy(0.0), torch.ones(2,
                                                             dtype=bool)) == {}
    assert float(control.weight) == 0.01
    assert not EntropyControl(0.0).active


@pytest.mark.parametrize('sharpness,direction', [(8.0, 1), (0.0, -1)])
def test_weight_moves_towards_the_target(sharpness, direction):
    """Below the target entropy the weight grows, above it shrinks, by
    exp(rate * (target - H / log C)) per step."""
    control = EntropyControl(0.01, target=0.5, rate=0.1)
    policy = policy_with_entropy(sharpness)
    entropy = float(policy.entropy().mean())
    out = control.step(policy, torch.ones(2, dtype=bool))
    want = 0.01 * math.exp(0.1 * (0.5 - entropy / math.log(4)))
    assert out['entropy_coef'].item() == pytest.approx(want, rel=1e-5)
    assert out['cell_entropy'].item() == pytest.approx(entropy, rel=1e-5)
    assert (float(control.weight) - 0.01) * direction > 0


def test_invalid_images_do_not_count_and_weight_is_clamped():
    control = EntropyControl(0.5, target=0.9, rate=100.0, max_weight=0.8)
    logits = torch.zeros(2, 4, 3, 3)
    logits[1, 0] = 50.0  # a collapsed but invalid image
    out = control.step(PixelPolicy(logits), torch.tensor([True, False]))
    assert out['cell_entropy'].item() == pytest.approx(math.log(4), rel=1e-5)
    assert float(control.weight) < 0.5  # uniform valid image: above target
    control.step(policy_with_entropy(50.0), torch.ones(2, dtype=bool))
    assert float(control.weight) == pytest.approx(0.8)  # clamped


def test_adapted_weight_survives_state_dict_round_trip():
    loss = PSRRewardLoss(baseline='group', normalize='group',
                         entropy_weight=0.01, entropy_target=0.5)
    for _ in range(3):
        loss.entropy.step(policy_with_entropy(8.0), torch.ones(2, dtype=bool))
    state = loss.state_dict()
    assert list(state) == ['entropy.weight']
    fresh = PSRRewardLoss(baseline='group', normalize='group',
                          entropy_weight=0.01, entropy_target=0.5)
    fresh.load_state_dict(state)
    assert float(fresh.entropy.weight) == float(loss.entropy.weight) > 0.01


@pytest.mark.parametrize('loss_cls', [PSRRewardLoss, PSDLoss])
def test_step_uses_the_weight_before_adapting_it(loss_cls):
    """The gradient of a step with a target equals the fixed-weight loss at
    the weight the step started with; the weight changes afterwards."""
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(2, 3, 2, 2, generator=gen)
    actions = torch.randint(0, 3, (4, 2, 2, 2), generator=gen)
    rewards = torch.rand(4, 2, generator=gen)
    valid = torch.ones(2, dtype=bool)
    kwargs = dict(normalize='group') if loss_cls is PSDLoss else dict(
        baseline='group', normalize='group')
    grads = []
    for target in (None, 0.5):
        loss = loss_cls(entropy_weight=0.2, entropy_target=target, **kwargs)
        logits = z.clone().requires_grad_()
        out = loss(PixelPolicy(logits), actions, rewards, valid)
        out[loss.loss_name].backward()
        grads.append(logits.grad)
        if target is not None:
            assert set(out) >= {'cell_entropy', 'entropy_coef'}
            assert out['entropy_coef'].item() != pytest.approx(0.2)
    torch.testing.assert_close(grads[0], grads[1])


@pytest.mark.parametrize('kwargs', [
    dict(weight=-1.0),
    dict(target=0.0),
    dict(target=1.0),
    dict(target=0.5, rate=0.0),
    dict(target=0.5, min_weight=0.0),
    dict(target=0.5, min_weight=0.5, max_weight=0.1),
])
def test_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        EntropyControl(**kwargs)


def test_losses_pass_the_target_through_their_config():
    loss = PSDLoss(entropy_target=0.3, entropy_rate=0.2)
    assert loss.entropy.target == 0.3 and loss.entropy.rate == 0.2
    assert 'target=0.3' in repr(loss)
    with pytest.raises(ValueError, match='entropy_target'):
        PSRRewardLoss(entropy_target=1.5)
