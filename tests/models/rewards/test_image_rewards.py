"""Image-level rewards from per-image confusion matrices."""
import ast
import inspect

import pytest
import torch
from mmseg.registry import MODELS

from rss_mmseg.models.rewards import image
from rss_mmseg.models.rewards.image import (ImageAccuracyReward,
                                            ImageDiceReward, ImageMIoUReward,
                                            per_image_confusion)
from tests.models.utils import make_data_samples

IGNORE = 255
REWARDS = (ImageMIoUReward, ImageAccuracyReward, ImageDiceReward)


def random_maps(num_samples=3, batch=2, size=(5, 6), num_classes=4, seed=0):
    """Random actions (K, B, H, W) and labels (B, H, W) with ignored pixels."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, num_classes, (batch, *size), generator=gen)
    labels[torch.rand(labels.shape, generator=gen) < 0.3] = IGNORE
    actions = torch.randint(0, num_classes, (num_samples, batch, *size),
                            generator=gen)
    return actions, labels


def loop_confusion(pred, ref, num_classes):
    """Confusion counts of one map, pixel by pixel (rows = reference)."""
    counts = [[0] * num_classes for _ in range(num_classes)]
    for p, r in zip(pred.flatten().tolist(), ref.flatten().tolist()):
        if r != IGNORE:
            counts[r][p] += 1
    return counts


def loop_scores(counts):
    """mIoU, accuracy and mean Dice of one confusion matrix, class by class."""
    num_classes = len(counts)
    ious, dices, correct, total = [], [], 0, 0
    for c in range(num_classes):
        tp = counts[c][c]
        fn = sum(counts[c]) - tp
        fp = sum(counts[r][c] for r in range(num_classes)) - tp
        correct += tp
        total += tp + fn
        if tp + fp + fn > 0:
            ious.append(tp / (tp + fp + fn))
            dices.append(2 * tp / (2 * tp + fp + fn))
    mean = lambda xs: sum(xs) / len(xs) if xs else 0.0  # noqa: E731
    return dict(ImageMIoUReward=mean(ious),
                ImageAccuracyReward=correct / total if total else 0.0,
                ImageDiceReward=mean(dices))


def test_confusion_matches_pixel_loop():
    actions, labels = random_maps(num_classes=5)
    confusion = per_image_confusion(actions, labels, 5)
    assert confusion.shape == (3, 2, 5, 5)
    assert confusion.dtype == torch.int64
    for k in range(3):
        for b in range(2):
            assert confusion[k, b].tolist() == loop_confusion(
                actions[k, b], labels[b], 5), (k, b)
    # Any integer dtype of actions gives the same counts.
    torch.testing.assert_close(
        per_image_confusion(actions.to(torch.uint8), labels, 5), confusion)


@pytest.mark.parametrize('num_classes', [None, 4])
def test_one_bincount_per_call(monkeypatch, num_classes):
    """All samples and images are counted at once, whatever K and B."""
    calls = []
    bincount = torch.bincount

    def counting_bincount(input, *args, **kwargs):
        calls.append(input.numel())
        return bincount(input, *args, **kwargs)

    monkeypatch.setattr(torch, 'bincount', counting_bincount)
    actions, labels = random_maps(num_samples=4, batch=3, num_classes=4)
    ImageDiceReward(num_classes=num_classes)(actions,
                                             make_data_samples(labels))
    assert calls == [actions.numel()]


def test_confusion_with_small_ignore_index():
    """ignore_index inside the class range: those pixels are not counted."""
    actions, labels = random_maps(num_classes=3, seed=1)
    labels[labels == IGNORE] = 2
    confusion = per_image_confusion(actions, labels, 3, ignore_index=2)
    assert int(confusion[..., 2, :].sum()) == 0
    assert int(confusion[0].sum()) == int((labels != 2).sum())
    # Predictions of the ignored value are still counted as class 2.
    expected = ((actions == 2) & (labels != 2)).sum((-2, -1))
    torch.testing.assert_close(confusion[..., 2].sum(-1), expected)


@pytest.mark.parametrize('num_classes', [None, 4, 7])
@pytest.mark.parametrize('reward_cls', REWARDS)
def test_rewards_match_loop_reference(reward_cls, num_classes):
    actions, labels = random_maps(num_classes=4, seed=2)
    reward = reward_cls(num_classes=num_classes)
    # Largest class in both maps, only in the reference, only in the actions.
    for acts, refs in [(actions, labels), (actions.clamp(max=1), labels),
                       (actions, labels.masked_fill(labels == 3, 1))]:
        rewards, valid = reward(acts, make_data_samples(refs))
        assert rewards.shape == (3, 2) and rewards.dtype == torch.float32
        assert valid.shape == (2, ) and valid.dtype == torch.bool
        assert valid.all()
        expected = torch.tensor([[
            loop_scores(loop_confusion(acts[k, b], refs[b], 4))[
                reward_cls.__name__] for b in range(2)
        ] for k in range(3)])
        torch.testing.assert_close(rewards, expected)
        assert 0 < rewards.min() < rewards.max() < 1


@pytest.mark.parametrize('reward_cls', REWARDS)
def test_perfect_prediction_scores_one(reward_cls):
    _, labels = random_maps(num_classes=4, seed=3)
    actions = labels.clamp(max=3).expand(2, -1, -1, -1).clone()
    # Whatever is predicted on ignored pixels does not count.
    actions[1][labels == IGNORE] = 0
    rewards, valid = reward_cls()(actions, make_data_samples(labels))
    torch.testing.assert_close(rewards, torch.ones(2, 2))
    assert valid.all()


@pytest.mark.parametrize('reward_cls', REWARDS)
def test_all_ignored_image_is_invalid_with_zero_reward(reward_cls):
    actions, labels = random_maps(num_classes=4, seed=4)
    labels[1] = IGNORE
    rewards, valid = reward_cls()(actions, make_data_samples(labels))
    assert valid.tolist() == [True, False]
    assert (rewards[:, 1] == 0).all()
    assert (rewards[:, 0] > 0).all()
    # Every image ignored, num_classes inferred from the actions alone.
    labels[0] = IGNORE
    rewards, valid = reward_cls()(actions, make_data_samples(labels))
    assert not valid.any() and (rewards == 0).all()


def test_class_only_in_prediction_lowers_miou():
    labels = torch.zeros(1, 4, 4, dtype=torch.long)
    labels[0, :, 2:] = 1
    labels[0, 3] = IGNORE
    extra = labels.clamp(max=1).clone()
    extra[0, 0, 0] = 2  # class 2 is not in the reference
    on_ignored = labels.clamp(max=1).clone()
    on_ignored[0, 3, 0] = 2  # ... or only where the reference is ignored
    actions = torch.stack([labels.clamp(max=1), extra, on_ignored])
    samples = make_data_samples(labels)
    miou, _ = ImageMIoUReward()(actions, samples)
    # IoU 5/6 for class 0, 1 for class 1, 0 for class 2.
    torch.testing.assert_close(miou[:, 0],
                               torch.tensor([1.0, (5 / 6 + 1) / 3, 1.0]))
    accuracy, _ = ImageAccuracyReward()(actions, samples)
    torch.testing.assert_close(accuracy[:, 0],
                               torch.tensor([1.0, 11 / 12, 1.0]))


def loop_reference_miou(counts):
    """Mean IoU over the classes of the reference only, class by class."""
    ious = []
    for c in range(len(counts)):
        tp, ref = counts[c][c], sum(counts[c])
        pred = sum(row[c] for row in counts)
        if ref > 0:
            ious.append(tp / (ref + pred - tp))
    return sum(ious) / len(ious) if ious else 0.0


def test_reference_classes_miou_matches_loop_and_ignores_absent_classes():
    actions, labels = random_maps(num_classes=4, seed=6)
    labels = labels.masked_fill(labels == 3, 1)  # class 3 absent
    reward = ImageMIoUReward(classes='reference')
    rewards, valid = reward(actions, make_data_samples(labels))
    expected = torch.tensor(
        [[loop_reference_miou(loop_confusion(actions[k, b], labels[b], 4))
          for b in range(2)] for k in range(3)])
    torch.testing.assert_close(rewards, expected)
    assert valid.all()
    # The union mean is lower: the sampled class 3 adds a zero-IoU class.
    union, _ = ImageMIoUReward()(actions, make_data_samples(labels))
    assert (union < rewards).all()
    # The grid path scores the same way.
    cells = actions[:, :, ::2, ::3]
    up = cells.repeat_interleave(2, -2).repeat_interleave(3, -1)[..., :5, :6]
    grid, _ = reward.score_cells(cells, make_data_samples(labels))
    full, _ = reward(up.contiguous(), make_data_samples(labels))
    torch.testing.assert_close(grid, full)
    assert "classes='reference'" in repr(reward)
    with pytest.raises(ValueError, match="classes must be one of.*'rows'"):
        ImageMIoUReward(classes='rows')


def test_value_errors():
    actions, labels = random_maps(num_classes=4, seed=5)
    samples = make_data_samples(labels)
    reward = ImageMIoUReward(num_classes=4)
    with pytest.raises(ValueError, match=r'\(3, 2, 5, 7\).*\(2, 5, 6\)'):
        reward(torch.zeros(3, 2, 5, 7, dtype=torch.long), samples)
    bad = actions.clone()
    bad[2, 1, 4, 5] = 6
    with pytest.raises(ValueError, match='action value 6 .*num_classes=4'):
        reward(bad, samples)
    bad[2, 1, 4, 5] = -1
    with pytest.raises(ValueError, match='action value -1 is negative'):
        reward(bad, samples)
    with pytest.raises(ValueError, match='action value -1 is negative'):
        ImageMIoUReward()(bad, samples)
    with pytest.raises(ValueError, match='action value 4 .*num_classes=4'):
        per_image_confusion(actions.clamp(max=3) + 1, labels, 4)
    bad_labels = labels.clone()
    bad_labels[0, 0, 0] = 9
    with pytest.raises(ValueError,
                       match='reference value 9 .*num_classes=4'):
        reward(actions, make_data_samples(bad_labels))
    bad_labels[0, 0, 0] = -3
    with pytest.raises(ValueError, match='reference value -3'):
        ImageDiceReward()(actions, make_data_samples(bad_labels))
    with pytest.raises(TypeError, match='integer'):
        reward(actions.float(), samples)
    with pytest.raises(ValueError, match=r'\(K, B, H, W\)'):
        reward(actions[0], samples)
    with pytest.raises(ValueError, match='num_classes'):
        ImageAccuracyReward(num_classes=0)
    with pytest.raises(ValueError, match='ignore_index'):
        ImageAccuracyReward(ignore_index=None)


@pytest.mark.parametrize('reward_cls', REWARDS)
def test_registry_build_and_attributes(reward_cls):
    reward = MODELS.build(
        dict(type=reward_cls.__name__, ignore_index=0, num_classes=3))
    assert isinstance(reward, reward_cls)
    assert reward.level == 'image' and reward.value_range == (0.0, 1.0)
    assert not reward.needs_inputs
    extra = ", classes='union'" if reward_cls is ImageMIoUReward else ''
    assert repr(reward) == (f'{reward_cls.__name__}(ignore_index=0, '
                            f'num_classes=3{extra})')


def test_registry_build_default():
    reward = MODELS.build(dict(type='ImageMIoUReward'))
    assert (reward.ignore_index, reward.num_classes) == (IGNORE, None)


def test_rewards_import_nothing_from_heads_or_losses():
    tree = ast.parse(inspect.getsource(image))
    modules = [
        node.module or '' for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
    ]
    assert not [m for m in modules if 'heads' in m or 'losses' in m]


def test_non_contiguous_actions():
    actions, labels = random_maps(num_classes=4, seed=6)
    permuted = actions.permute(0, 1, 3, 2).contiguous().transpose(2, 3)
    assert not permuted.is_contiguous()
    torch.testing.assert_close(
        per_image_confusion(permuted, labels, 4),
        per_image_confusion(actions, labels, 4))


@pytest.mark.parametrize('grid,size', [((2, 3), (5, 6)), ((1, 1), (4, 4)),
                                       ((4, 5), (17, 23)), ((3, 3), (3, 3))])
@pytest.mark.parametrize('num_classes', [4, None])
def test_cell_confusion_equals_confusion_of_upsampled_maps(
        grid, size, num_classes):
    from rss_mmseg.models.policy import upsample_actions
    from rss_mmseg.models.rewards.image import per_image_cell_confusion
    gen = torch.Generator().manual_seed(sum(grid) + sum(size))
    cells = torch.randint(0, 4, (3, 2, *grid), generator=gen)
    _, labels = random_maps(batch=2, size=size, num_classes=4)
    full = per_image_confusion(upsample_actions(cells, size), labels, 4)
    got = per_image_cell_confusion(cells, labels, num_classes)
    C = got.shape[-1]
    assert got.dtype == torch.int64
    assert torch.equal(got, full[..., :C, :C])
    assert full[..., C:, :].sum() == 0 and full[..., :, C:].sum() == 0


@pytest.mark.parametrize('reward_cls', REWARDS)
def test_score_cells_equals_scoring_the_upsampled_maps(reward_cls):
    from rss_mmseg.models.policy import upsample_actions
    gen = torch.Generator().manual_seed(3)
    cells = torch.randint(0, 4, (5, 2, 3, 4), generator=gen)
    _, labels = random_maps(batch=2, size=(7, 9), num_classes=4)
    labels[1] = IGNORE  # an all-ignored image stays invalid
    samples = make_data_samples(labels)
    reward = reward_cls()
    want, want_valid = reward(upsample_actions(cells, (7, 9)), samples)
    got, got_valid = reward.score_cells(cells, samples)
    assert torch.allclose(got, want) and torch.equal(got_valid, want_valid)
    assert got_valid.tolist() == [True, False]


def test_cell_confusion_value_errors():
    from rss_mmseg.models.rewards.image import per_image_cell_confusion
    labels = torch.zeros(2, 4, 4, dtype=torch.long)
    with pytest.raises(ValueError, match='negative'):
        per_image_cell_confusion(-torch.ones(1, 2, 2, 2, dtype=torch.long),
                                 labels, 3)
    with pytest.raises(ValueError, match='not a class index'):
        per_image_cell_confusion(
            torch.full((1, 2, 2, 2), 3, dtype=torch.long), labels, 3)
    with pytest.raises(ValueError, match='do not match'):
        per_image_cell_confusion(
            torch.zeros(1, 2, 5, 2, dtype=torch.long), labels, 3)
    labels[0, 0, 0] = 7
    with pytest.raises(ValueError, match='reference value 7'):
        per_image_cell_confusion(
            torch.zeros(1, 2, 2, 2, dtype=torch.long), labels, 3)


def test_recall_reward_weighs_every_reference_class_equally():
    from rss_mmseg.models.rewards.image import ImageRecallReward
    reference = torch.zeros(1, 4, 4, dtype=torch.long)
    reference[0, 0, 0] = 1  # one pixel of a small class
    found_small = reference.clone()[None]  # (K=1, B=1, H, W): exact
    missed_small = torch.zeros_like(found_small)
    spurious = found_small.clone()
    spurious[0, 0, 3, 3] = 2  # a class the image lacks takes one pixel
    actions = torch.cat([found_small, missed_small, spurious])
    rewards, valid = ImageRecallReward()(actions,
                                         make_data_samples(reference))
    assert valid.tolist() == [True]
    # recall per reference class: (15/15 + 1/1) / 2, (15/15 + 0/1) / 2,
    # (14/15 + 1/1) / 2
    torch.testing.assert_close(
        rewards[:, 0], torch.tensor([1.0, 0.5, (14 / 15 + 1) / 2]))
