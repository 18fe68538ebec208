"""CallableReward: image rewards from a user scoring function."""
import ast
import inspect

import numpy as np
import pytest
import torch
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

from rss_mmseg.models.rewards import callable as callable_module
from rss_mmseg.models.rewards.callable import CallableReward
from tests.models.utils import make_data_samples

HERE = 'tests.models.rewards.test_callable_reward'
NOT_CALLABLE = 42
CALLS = []


def mean_foreground(inputs, action_maps, data_samples):
    """Fraction of pixels not labelled 0: (B, H, W) -> (B,), batched too."""
    CALLS.append((inputs, tuple(action_maps.shape), torch.is_grad_enabled()))
    return (action_maps != 0).float().flatten(-2).mean(-1)


def brightness(inputs, action_maps, data_samples):
    """Mean input intensity per image, or -1 without inputs, as a list."""
    if inputs is None:
        return [-1.0] * action_maps.shape[0]
    return inputs.mean((1, 2, 3)).tolist()


def numpy_scores(inputs, action_maps, data_samples):
    return np.arange(action_maps.shape[0], dtype=np.float64)


def scalar_score(inputs, action_maps, data_samples):
    return torch.tensor(1.0)


def differentiable_score(inputs, action_maps, data_samples):
    weight = torch.ones(action_maps.shape[0], requires_grad=True)
    return weight * 2


class Scorers:

    @staticmethod
    def first_class(inputs, action_maps, data_samples):
        return (action_maps == 1).float().mean((-2, -1))


def label_free_samples(batch, size=(4, 5)):
    """Data samples with metainfo only: no gt_sem_seg."""
    samples = []
    for _ in range(batch):
        sample = SegDataSample()
        sample.set_metainfo(dict(img_shape=size, ori_shape=size))
        samples.append(sample)
    return samples


def random_actions(num_samples=3, batch=2, size=(4, 5), seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 3, (num_samples, batch, *size), generator=gen)


@pytest.mark.parametrize('batched', [False, True])
def test_scores_label_free_data(batched):
    CALLS.clear()
    actions = random_actions()
    samples = label_free_samples(2)
    assert not any('gt_sem_seg' in s for s in samples)
    reward = CallableReward(f'{HERE}.mean_foreground', batched=batched,
                            pass_inputs=False)
    rewards, valid = reward(actions, samples,
                            inputs=torch.rand(2, 3, 4, 5))
    assert rewards.shape == (3, 2) and rewards.dtype == torch.float32
    assert valid.dtype == torch.bool and valid.tolist() == [True, True]
    torch.testing.assert_close(rewards,
                               (actions != 0).float().mean((-2, -1)))
    if batched:
        assert [c[1] for c in CALLS] == [(3, 2, 4, 5)]
    else:
        assert [c[1] for c in CALLS] == [(2, 4, 5)] * 3
    # pass_inputs=False hides the inputs; the scorer runs without grad.
    assert all(c[0] is None and not c[2] for c in CALLS)
    assert not reward.needs_inputs


def test_inputs_are_passed_and_lists_converted():
    actions = random_actions()
    inputs = torch.rand(2, 3, 4, 5)
    samples = label_free_samples(2)
    reward = CallableReward(f'{HERE}.brightness')
    assert reward.needs_inputs
    rewards, _ = reward(actions, samples, inputs=inputs)
    torch.testing.assert_close(rewards,
                               inputs.mean((1, 2, 3)).expand(3, 2))
    rewards, _ = CallableReward(f'{HERE}.brightness', pass_inputs=False)(
        actions, samples, inputs=inputs)
    torch.testing.assert_close(rewards, torch.full((3, 2), -1.0))


def test_numpy_output_nested_path_and_plain_callable():
    actions = random_actions()
    samples = make_data_samples(torch.zeros(2, 4, 5, dtype=torch.long))
    rewards, _ = CallableReward(f'{HERE}.numpy_scores')(actions, samples)
    assert rewards.dtype == torch.float32
    torch.testing.assert_close(rewards, torch.tensor([[0., 1.]] * 3))
    nested = CallableReward(f'{HERE}.Scorers.first_class', batched=True)
    rewards, _ = nested(actions, samples)
    torch.testing.assert_close(rewards, (actions == 1).float().mean((-2, -1)))
    direct = CallableReward(mean_foreground, name='fg')
    assert direct.fn_path == f'{HERE}.mean_foreground'
    assert 'fg' in repr(direct)


def test_scores_are_detached():
    rewards, _ = CallableReward(f'{HERE}.differentiable_score')(
        random_actions(), label_free_samples(2))
    assert not rewards.requires_grad
    torch.testing.assert_close(rewards, torch.full((3, 2), 2.0))


def test_wrong_output_shape_names_the_function():
    actions = random_actions()
    samples = label_free_samples(2)
    reward = CallableReward(f'{HERE}.scalar_score')
    with pytest.raises(ValueError,
                       match=r'scalar_score.*\(\).*expected \(2,\)'):
        reward(actions, samples)
    # A per-image scorer run batched returns (K,) instead of (K, B).
    reward = CallableReward(f'{HERE}.numpy_scores', batched=True)
    with pytest.raises(ValueError,
                       match=r'numpy_scores.*\(3,\).*expected \(3, 2\)'):
        reward(actions, samples)
    with pytest.raises(ValueError, match='batch size 2'):
        reward(actions, samples[:1])


def test_bad_paths(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match='dotted path'):
        CallableReward('mean_foreground')
    with pytest.raises(ImportError, match='no_such_pkg_xyz'):
        CallableReward('no_such_pkg_xyz.scores.fn')
    with pytest.raises(ImportError, match="has no attribute 'missing_fn'"):
        CallableReward(f'{HERE}.missing_fn')
    with pytest.raises(ImportError, match="'tests.models.no_such_module' "
                       'is not a module'):
        CallableReward('tests.models.no_such_module.fn')
    with pytest.raises(ValueError, match='NOT_CALLABLE.*not callable'):
        CallableReward(f'{HERE}.NOT_CALLABLE')
    with pytest.raises(ValueError, match='dotted path or a callable'):
        CallableReward(3)
    # A module that exists but fails on its own import is reported as such.
    (tmp_path / 'rss_broken_scorer.py').write_text(
        'import rss_missing_dependency_xyz\n\ndef fn(*args):\n    pass\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ImportError,
                       match='rss_broken_scorer.*rss_missing_dependency'):
        CallableReward('rss_broken_scorer.fn')


def test_value_range_validation():
    reward = CallableReward(f'{HERE}.mean_foreground', value_range=[0, 1])
    assert reward.value_range == (0.0, 1.0)
    assert CallableReward(f'{HERE}.mean_foreground').value_range is None
    with pytest.raises(ValueError, match='low < high'):
        CallableReward(f'{HERE}.mean_foreground', value_range=(1, 0))
    with pytest.raises(ValueError, match='pair'):
        CallableReward(f'{HERE}.mean_foreground', value_range=(0, 1, 2))


def test_registry_build():
    reward = MODELS.build(
        dict(type='CallableReward', fn=f'{HERE}.mean_foreground',
             batched=True, value_range=(0, 1)))
    assert isinstance(reward, CallableReward)
    assert reward.level == 'image' and reward.needs_inputs
    assert reward.name == f'{HERE}.mean_foreground'
    assert repr(reward) == (f"CallableReward(fn='{HERE}.mean_foreground', "
                            'batched=True, pass_inputs=True, '
                            'value_range=(0.0, 1.0))')


def test_rewards_import_nothing_from_heads_or_losses():
    tree = ast.parse(inspect.getsource(callable_module))
    modules = [
        node.module or '' for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
    ]
    assert not [m for m in modules if 'heads' in m or 'losses' in m]
