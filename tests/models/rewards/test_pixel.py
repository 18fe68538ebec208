"""PixelMatchReward: vectorized per-pixel rewards."""
import ast
import inspect

import pytest
import torch

from rss_mmseg.models import PixelMatchReward
from rss_mmseg.models.rewards import pixel
from tests.models.utils import make_data_samples


def test_values_shapes_and_ignored_pixels():
    labels = torch.tensor([[[0, 1], [2, 255]], [[1, 1], [255, 255]]])
    actions = torch.tensor([[[[0, 0], [2, 2]], [[1, 0], [0, 1]]],
                            [[[1, 1], [2, 0]], [[1, 1], [1, 1]]]])  # K=2
    rewards, valid = PixelMatchReward(correct=2.0, wrong=-1.0)(
        actions, make_data_samples(labels))
    assert rewards.shape == (2, 2, 2, 2) and rewards.dtype == torch.float32
    assert valid.shape == (2, 2, 2) and valid.dtype == torch.bool
    assert valid.tolist() == [[[True, True], [True, False]],
                              [[True, True], [False, False]]]
    expected = torch.tensor([[[[2, -1], [2, 0]], [[2, -1], [0, 0]]],
                             [[[-1, 2], [2, 0]], [[2, 2], [0, 0]]]])
    torch.testing.assert_close(rewards, expected.float())


def test_default_reward_is_hit_indicator():
    gen = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 5, (3, 6, 7), generator=gen)
    labels[1, :2] = 255
    actions = torch.randint(0, 5, (4, 3, 6, 7), generator=gen)
    rewards, valid = PixelMatchReward()(actions, make_data_samples(labels))
    torch.testing.assert_close(rewards, ((actions == labels) & valid).float())


def test_mismatched_shapes_and_missing_reference():
    reward = PixelMatchReward()
    samples = make_data_samples(torch.zeros(2, 4, 4, dtype=torch.long))
    with pytest.raises(ValueError):
        reward(torch.zeros(1, 2, 4, 5, dtype=torch.long), samples)
    del samples[0].gt_sem_seg
    with pytest.raises(KeyError):
        reward(torch.zeros(1, 2, 4, 4, dtype=torch.long), samples)
    with pytest.raises(ValueError):
        PixelMatchReward(correct=0.0, wrong=0.0)


def test_rewards_import_nothing_from_heads_or_losses():
    tree = ast.parse(inspect.getsource(pixel))
    modules = [
        node.module or '' for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
    ]
    assert not [m for m in modules if 'heads' in m or 'losses' in m]
