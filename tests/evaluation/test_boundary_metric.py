"""Boundary F-score: the metric and the reward against hand-computed and
brute-force references on small maps."""
import math

import numpy as np
import pytest
import torch
from mmseg.registry import METRICS, MODELS
from mmseg.structures import SegDataSample
from mmengine.structures import PixelData

import rss_mmseg  # noqa: F401
from rss_mmseg.evaluation.functional import (boundary_band, boundary_fscore,
                                             boundary_match_counts)


def brute_force_counts(pred, ref, num_classes, tolerance, ignore=255):
    """Pixel loops over the definition (no shared code with the module)."""
    H, W = pred.shape
    ignored = ref == ignore

    def unscored(y, x):
        return any(
            0 <= y + dy < H and 0 <= x + dx < W and ignored[y + dy, x + dx]
            for dy, dx in ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1)))

    def edges(lab):
        out = []
        for y in range(H):
            for x in range(W):
                if unscored(y, x):
                    continue
                if any(0 <= y + dy < H and 0 <= x + dx < W
                       and lab[y + dy, x + dx] != lab[y, x]
                       for dy, dx in ((1, 0), (-1, 0), (0, 1), (0, -1))):
                    out.append((y, x, int(lab[y, x])))
        return out

    pe, re_ = edges(pred), edges(ref)
    counts = np.zeros((4, num_classes), dtype=np.int64)
    for own, other, row in ((pe, re_, 0), (re_, pe, 2)):
        for y, x, c in own:
            counts[row + 1, c] += 1
            if any(c2 == c and (y - y2)**2 + (x - x2)**2 <= tolerance**2
                   for y2, x2, c2 in other):
                counts[row, c] += 1
    return counts


def shifted_pair(shift=1):
    ref = torch.zeros(4, 6, dtype=torch.long)
    ref[:, 3:] = 1
    pred = torch.zeros(4, 6, dtype=torch.long)
    pred[:, 3 + shift:] = 1
    return pred, ref


@pytest.mark.parametrize('tolerance,expected', [(0, 0.0), (1, 1.0)])
def test_boundary_one_pixel_off_by_hand(tolerance, expected):
    pred, ref = shifted_pair()
    counts = boundary_match_counts(pred[None], ref[None], 2, tolerance)[:, 0]
    # each class has a 4-pixel boundary column in both maps
    assert counts[1].tolist() == [4, 4] and counts[3].tolist() == [4, 4]
    assert counts[0].tolist() == [4 * expected] * 2
    precision, recall, fscore = boundary_fscore(counts)
    assert fscore.tolist() == [expected, expected]


def test_ignored_pixels_and_their_neighbours_are_not_scored():
    pred, ref = shifted_pair()
    ref[0] = 255
    counts = boundary_match_counts(pred[None], ref[None], 2, 1)[:, 0]
    assert counts[1].tolist() == [2, 2] and counts[3].tolist() == [2, 2]


@pytest.mark.parametrize('width,columns', [(0, [2, 3]), (1, [1, 2, 3, 4]),
                                           (2, [0, 1, 2, 3, 4, 5])])
def test_boundary_band_by_hand(width, columns):
    _, ref = shifted_pair()  # classes 0 | 1 between columns 2 and 3
    band = boundary_band(ref[None], width)[0]
    expected = torch.zeros(4, 6, dtype=torch.bool)
    expected[:, columns] = True
    assert torch.equal(band, expected)


def test_boundary_band_is_a_disc_and_skips_ignored_borders():
    ref = torch.zeros(7, 7, dtype=torch.long)
    ref[3, 3] = 1  # one pixel of class 1: it and its 4 neighbours are edges
    band = boundary_band(ref, 1)
    # Euclidean distance <= 1 from the plus-shaped boundary: a diamond of
    # radius 2 around the centre
    yy, xx = torch.meshgrid(torch.arange(7), torch.arange(7), indexing='ij')
    assert torch.equal(band, (yy - 3).abs() + (xx - 3).abs() <= 2)
    # an ignored region's border is no class boundary, and ignored pixels
    # are never in the band
    ref = torch.zeros(5, 6, dtype=torch.long)
    ref[:, 3:] = 255
    assert not boundary_band(ref, 2).any()
    # 0 0 1 | ignored | 1 1: column 2 touches the ignored column, so only
    # column 1 is a boundary; the band around it stops at the ignored one
    ref = torch.tensor([[0, 0, 1, 255, 1, 1]]).repeat(5, 1)
    expected = torch.zeros(5, 6, dtype=torch.bool)
    expected[:, :3] = True
    assert torch.equal(boundary_band(ref, 1), expected)
    expected[:, 4] = True  # 3 pixels from column 1, across the ignored one
    assert torch.equal(boundary_band(ref, 3), expected)


@pytest.mark.parametrize('num_classes,tolerance', [(3, 0), (3, 1), (4, 2),
                                                   (70, 1)])
def test_matches_brute_force_on_random_blocky_maps(num_classes, tolerance):
    gen = torch.Generator().manual_seed(num_classes * 10 + tolerance)
    for _ in range(3):
        low = torch.randint(0, num_classes, (2, 3, 4), generator=gen)
        ref = low.repeat_interleave(3, 1).repeat_interleave(3, 2)  # 9x12
        pred = ref.clone()
        noise = torch.rand(ref.shape, generator=gen) < 0.2
        pred[noise] = torch.randint(
            0, num_classes, (int(noise.sum()), ), generator=gen)
        ref[0, :2, :3] = 255
        got = boundary_match_counts(pred, ref, num_classes, tolerance)
        for n in range(2):
            want = brute_force_counts(pred[n].numpy(), ref[n].numpy(),
                                      num_classes, tolerance)
            np.testing.assert_array_equal(got[:, n].numpy(), want)
        # K predictions of the same references at once: the same counts
        both = boundary_match_counts(
            torch.stack([pred, ref.masked_fill(ref == 255, 0)]), ref,
            num_classes, tolerance)
        torch.testing.assert_close(both[:, 0], got)
        exact = boundary_match_counts(ref.masked_fill(ref == 255, 0), ref,
                                      num_classes, tolerance)
        torch.testing.assert_close(both[:, 1], exact)


def _sample(pred, ref):
    sample = SegDataSample()
    sample.pred_sem_seg = PixelData(data=pred[None])
    sample.gt_sem_seg = PixelData(data=ref[None])
    return sample.to_dict()


def test_metric_sums_counts_over_the_dataset():
    metric = METRICS.build(dict(type='BoundaryFScoreMetric', tolerance=1))
    metric.dataset_meta = dict(classes=('a', 'b', 'c'))
    good_pred, ref = shifted_pair(shift=0)
    bad_pred = torch.zeros_like(ref)  # no boundary predicted
    metric.process({}, [_sample(good_pred, ref), _sample(bad_pred, ref)])
    result = metric.evaluate(2)
    # class a: 4 of 4 predicted matched, 4 of 8 reference found; same for b
    precision, recall = 1.0, 0.5
    fscore = 2 * precision * recall / (precision + recall)
    assert result['mBPrecision'] == pytest.approx(100 * precision)
    assert result['mBRecall'] == pytest.approx(100 * recall)
    assert result['mBFscore'] == pytest.approx(round(100 * fscore, 2))


def test_metric_goes_beside_iou_in_one_evaluator():
    from mmengine.evaluator import Evaluator
    evaluator = Evaluator([
        dict(type='IoUMetric', iou_metrics=['mIoU']),
        dict(type='BoundaryFScoreMetric')
    ])
    evaluator.dataset_meta = dict(classes=('a', 'b'))
    pred, ref = shifted_pair(shift=0)
    evaluator.process([_sample(pred, ref)], {})
    result = evaluator.evaluate(1)
    assert result['mIoU'] == 100.0 and result['mBFscore'] == 100.0


def test_reward_scores_every_sample_and_image():
    reward = MODELS.build(
        dict(type='BoundaryFScoreReward', num_classes=2, tolerance=0))
    pred, ref = shifted_pair()
    flat = torch.zeros_like(ref)
    actions = torch.stack([torch.stack([ref, ref]), torch.stack([pred, flat])])
    samples = [SegDataSample(gt_sem_seg=PixelData(data=r[None]))
               for r in (ref, flat)]
    rewards, valid = reward(actions, samples)
    assert valid.tolist() == [True, True]
    # image 0: exact (1), one pixel off at tolerance 0 (0); image 1 has no
    # boundary: the predicted ref boundary scores 0, no boundary scores 1
    assert rewards.tolist() == [[1.0, 0.0], [0.0, 1.0]]


def test_weighted_sum_of_rewards():
    reward = MODELS.build(
        dict(
            type='WeightedSumReward',
            rewards=[
                dict(type='ImageAccuracyReward'),
                dict(type='BoundaryFScoreReward', num_classes=2, tolerance=0)
            ],
            weights=[0.25, 0.75]))
    assert reward.level == 'image' and reward.value_range == (0.0, 1.0)
    pred, ref = shifted_pair()
    samples = [SegDataSample(gt_sem_seg=PixelData(data=ref[None]))]
    rewards, _ = reward(pred[None, None], samples)
    accuracy = 20 / 24  # one of six columns wrong
    assert rewards.item() == pytest.approx(0.25 * accuracy + 0.75 * 0.0)
    with pytest.raises(ValueError, match='same level'):
        MODELS.build(
            dict(
                type='WeightedSumReward',
                rewards=[
                    dict(type='ImageAccuracyReward'),
                    dict(type='PixelMatchReward')
                ]))
