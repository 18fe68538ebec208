"""MarginalMIoUReward: a map's first-order share of the dataset mIoU."""
import pytest
import torch
from mmseg.registry import MODELS

from rss_mmseg.models.rewards import MarginalMIoUReward
from tests.models.rewards.test_image_rewards import (IGNORE, loop_confusion,
                                                     random_maps)
from tests.models.utils import make_data_samples


def loop_counts(actions, labels, num_classes):
    """Intersection and union per sample, image and class, pixel by pixel."""
    inter, union = [], []
    for k in range(actions.shape[0]):
        for b in range(actions.shape[1]):
            counts = loop_confusion(actions[k, b], labels[b], num_classes)
            for c in range(num_classes):
                tp = counts[c][c]
                ref = sum(counts[c])
                pred = sum(counts[r][c] for r in range(num_classes))
                inter.append(tp)
                union.append(ref + pred - tp)
    shape = (actions.shape[0], actions.shape[1], num_classes)
    return (torch.tensor(inter, dtype=torch.float).view(shape),
            torch.tensor(union, dtype=torch.float).view(shape))


def expected_rewards(inter, union, avg_inter, avg_union):
    """``1/C sum_c (I_c - IoU_c U_c) / u_c``, class by class."""
    K, B, C = inter.shape
    rewards = torch.zeros(K, B)
    for k in range(K):
        for b in range(B):
            total = 0.0
            for c in range(C):
                iou = avg_inter[c] / max(avg_union[c], 1e-6)
                total += (inter[k, b, c] - iou * union[k, b, c]) / max(
                    avg_union[c], 1.0)
            rewards[k, b] = total / C
    return rewards


def test_first_batch_is_scored_against_its_own_averages():
    actions, labels = random_maps(num_samples=3, batch=2, num_classes=4)
    reward = MarginalMIoUReward(num_classes=4)
    rewards, valid = reward(actions, make_data_samples(labels))
    inter, union = loop_counts(actions, labels, 4)
    avg_inter, avg_union = inter.mean((0, 1)), union.mean((0, 1))
    torch.testing.assert_close(reward.intersection, avg_inter)
    torch.testing.assert_close(reward.union, avg_union)
    torch.testing.assert_close(
        rewards, expected_rewards(inter, union, avg_inter, avg_union))
    assert valid.all()


def test_averages_move_by_the_momentum():
    first, labels = random_maps(num_samples=2, num_classes=4, seed=1)
    second, _ = random_maps(num_samples=2, num_classes=4, seed=2)
    reward = MarginalMIoUReward(momentum=0.75, num_classes=4)
    samples = make_data_samples(labels)
    reward(first, samples)
    old_inter, old_union = reward.intersection, reward.union
    rewards, _ = reward(second, samples)
    inter, union = loop_counts(second, labels, 4)
    avg_inter = 0.75 * old_inter + 0.25 * inter.mean((0, 1))
    avg_union = 0.75 * old_union + 0.25 * union.mean((0, 1))
    torch.testing.assert_close(reward.intersection, avg_inter)
    torch.testing.assert_close(reward.union, avg_union)
    torch.testing.assert_close(
        rewards, expected_rewards(inter, union, avg_inter, avg_union))


def _false_positive_cost(class_two_learned: bool) -> float:
    """Reward lost by labeling 4 pixels of class 0 as class 2 in an image
    without class 2, after the averages have seen class 2 segmented well
    (``class_two_learned``) or never hit."""
    labels = torch.zeros(1, 4, 4, dtype=torch.long)
    labels[:, :, 2:] = 1
    exact = labels.clone()
    wrong = labels.clone()
    wrong[0, :2, :2] = 2
    reward = MarginalMIoUReward(momentum=0.5, num_classes=3)
    # history: images with a class-2 block, hit exactly or missed
    history = torch.zeros(1, 4, 4, dtype=torch.long)
    history[:, :2, :2] = 2
    guess = history.clone() if class_two_learned else torch.zeros_like(
        history)
    reward(guess[None], make_data_samples(history))
    rewards, _ = reward(torch.stack([exact, wrong]),
                        make_data_samples(labels))
    return float(rewards[0, 0] - rewards[1, 0])


def test_false_positives_cost_more_once_the_class_is_learned():
    unlearned = _false_positive_cost(class_two_learned=False)
    learned = _false_positive_cost(class_two_learned=True)
    assert unlearned > 0  # the four pixels are lost to class 0
    assert learned > unlearned + 0.05


def test_ignored_pixels_and_empty_images():
    labels = torch.full((2, 3, 3), IGNORE)
    labels[0, 0, 0] = 1
    actions = torch.ones(2, 2, 3, 3, dtype=torch.long)
    rewards, valid = MarginalMIoUReward(num_classes=2)(
        actions, make_data_samples(labels))
    assert valid.tolist() == [True, False]
    assert torch.isfinite(rewards).all()
    assert (rewards[:, 1] == 0).all()


@pytest.mark.parametrize('momentum', [1.0, -0.1, True, '0.9'])
def test_bad_momentum_is_refused(momentum):
    with pytest.raises(ValueError, match='momentum'):
        MarginalMIoUReward(momentum=momentum)


def test_builds_from_the_registry():
    reward = MODELS.build(dict(type='MarginalMIoUReward', momentum=0.9))
    assert isinstance(reward, MarginalMIoUReward)
    assert reward.level == 'image' and 'momentum=0.9' in repr(reward)
