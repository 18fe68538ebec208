"""One-cell variant gains of the confusion rewards, against brute force.

``score_cell_variants`` must give, for every sample, cell and class, exactly
``R(sample with that cell set to that class) - R(sample)`` where R is the
reward's own ``__call__`` on the upsampled map: the gains are reward values
of whole maps and nothing else (no label reaches LocalExpectationLoss
another way).
"""
import pytest
import torch

from rss_mmseg.models.policy import upsample_actions
from rss_mmseg.models.rewards import (BoundaryFScoreReward,
                                      ImageAccuracyReward, ImageDiceReward,
                                      ImageMIoUReward, ImageRecallReward,
                                      WeightedSumReward)
from tests.models.utils import make_data_samples

C = 5
REWARDS = {
    'mIoU union': lambda: ImageMIoUReward(num_classes=C),
    'mIoU reference': lambda: ImageMIoUReward(classes='reference'),
    'Dice': lambda: ImageDiceReward(num_classes=C),
    'recall': lambda: ImageRecallReward(num_classes=C),
    'accuracy': lambda: ImageAccuracyReward(num_classes=C),
    'weighted sum': lambda: WeightedSumReward(
        [ImageMIoUReward(num_classes=C),
         ImageRecallReward(num_classes=C)], [0.7, 0.3]),
    'mIoU band': lambda: ImageMIoUReward(
        num_classes=C, classes='reference', band=0),
    'mIoU + mIoU band': lambda: WeightedSumReward([
        ImageMIoUReward(num_classes=C, classes='reference'),
        ImageMIoUReward(num_classes=C, classes='reference', band=1)
    ], [0.5, 0.5]),
}


def brute_force_gains(reward, cell_actions, samples, size):
    K, B, rows, cols = cell_actions.shape
    base, _ = reward(upsample_actions(cell_actions, size), samples)
    gains = torch.zeros(K, B, C, rows, cols)
    for i in range(rows):
        for j in range(cols):
            for c in range(C):
                variant = cell_actions.clone()
                variant[:, :, i, j] = c
                scored, _ = reward(upsample_actions(variant, size), samples)
                gains[:, :, c, i, j] = scored - base
    return base, gains


@pytest.mark.parametrize('name', list(REWARDS))
@pytest.mark.parametrize('grid', [(3, 4), (12, 10)], ids=['cells', 'pixels'])
def test_variant_gains_equal_scoring_every_variant(name, grid):
    gen = torch.Generator().manual_seed(0)
    reference = torch.randint(0, C, (2, 12, 10), generator=gen)
    reference[0, :3] = 255  # ignored rows: neither counted nor predicted
    reference[1][reference[1] == 3] = 2  # class 3 absent from image 1
    samples = make_data_samples(reference)
    actions = torch.randint(0, C, (3, 2, *grid), generator=gen)
    reward = REWARDS[name]()
    rewards, valid, gains = reward.score_cell_variants(actions, samples)
    if reward.__class__ is ImageMIoUReward and reward.num_classes is None:
        reward.num_classes = C  # the brute force must know absent classes
    base, expected = brute_force_gains(reward, actions, samples, (12, 10))
    assert valid.all()
    assert torch.allclose(rewards, base, atol=1e-6)
    assert gains.shape == (3, 2, C, *grid)
    assert torch.allclose(gains, expected, atol=1e-6)
    # a cell's own class is no change
    own = gains.gather(2, actions.unsqueeze(2))
    assert (own == 0).all()
    # and some variants matter, in both directions
    assert (gains > 1e-3).any() and (gains < -1e-3).any()


def test_band_scores_the_reference_near_its_boundaries_only():
    """A band reward is the plain reward of the reference with every pixel
    farther than ``band`` from a class boundary ignored; images without a
    boundary are invalid."""
    from rss_mmseg.evaluation.functional import boundary_band
    gen = torch.Generator().manual_seed(3)
    reference = torch.zeros(3, 16, 16, dtype=torch.long)
    reference[0, 4:10, 3:12] = 1
    reference[0, 12:, :5] = 2
    reference[1, :, 8:] = 3
    reference[1, :2] = 255
    # image 2: one class, no boundary
    actions = torch.randint(0, 4, (2, 3, 16, 16), generator=gen)
    actions[0, 0] = reference[0]  # sample 0 of image 0 is right everywhere
    samples = make_data_samples(reference)
    band = boundary_band(reference, 2)
    assert band[:2].any() and not band[:2].all()
    masked = make_data_samples(reference.masked_fill(~band, 255))
    for reward in (ImageMIoUReward(num_classes=4, band=2),
                   ImageRecallReward(num_classes=4, band=2)):
        rewards, valid = reward(actions, samples)
        plain = type(reward)(num_classes=4)
        expected, expected_valid = plain(actions, masked)
        assert valid.tolist() == [True, True, False]
        assert torch.equal(valid, expected_valid)
        assert torch.allclose(rewards, expected)
        assert rewards[0, 0] == 1.0
        # errors far from every boundary cost nothing
        far = actions.clone()
        far[0, 0][~band[0]] = 3
        assert reward(far, samples)[0][0, 0] == 1.0
    with pytest.raises(ValueError, match='band'):
        ImageMIoUReward(band=-1)


def test_image_without_valid_pixels_is_invalid_with_zero_gains():
    reference = torch.full((2, 8, 8), 255)
    reference[1] = 1
    samples = make_data_samples(reference)
    actions = torch.randint(0, C, (2, 2, 4, 4),
                            generator=torch.Generator().manual_seed(1))
    _, valid, gains = ImageMIoUReward(num_classes=C).score_cell_variants(
        actions, samples)
    assert valid.tolist() == [False, True]
    assert (gains[:, 0] == 0).all()


def test_rewards_that_are_not_class_means_have_no_variants():
    assert not hasattr(BoundaryFScoreReward(num_classes=C),
                       'score_cell_variants')
    mixed = WeightedSumReward(
        [ImageMIoUReward(), BoundaryFScoreReward(num_classes=C)])
    assert not hasattr(mixed, 'score_cell_variants')


@pytest.mark.parametrize('grid', [(3, 4), (12, 10)], ids=['cells', 'pixels'])
def test_pooled_gains_are_changes_of_the_batch_score(grid):
    """pooled=True: a cell of image b is credited with its change of the
    mIoU of the batch's summed confusion."""
    from rss_mmseg.models.rewards import per_image_confusion
    gen = torch.Generator().manual_seed(2)
    reference = torch.randint(0, C, (3, 12, 10), generator=gen)
    reference[2, :4] = 255
    samples = make_data_samples(reference)
    actions = torch.randint(0, C, (2, 3, *grid), generator=gen)
    reward = ImageMIoUReward(num_classes=C)
    _, _, gains = reward.score_cell_variants(actions, samples, pooled=True)

    def batch_score(cell_actions):
        confusion = per_image_confusion(
            upsample_actions(cell_actions, (12, 10)), reference, C)
        return reward.score(confusion.sum(1, keepdim=True).float())[:, 0]

    base = batch_score(actions)
    for b, i, j, c in [(0, 0, 0, 1), (1, 2, 3, 4), (2, 0, 1, 0), (2, 2, 2, 3)]:
        variant = actions.clone()
        variant[:, b, i, j] = c
        assert torch.allclose(batch_score(variant) - base,
                              gains[:, b, c, i, j], atol=1e-6)
    own = ImageMIoUReward(num_classes=C).score_cell_variants(actions,
                                                             samples)[2]
    assert not torch.allclose(own, gains)


def test_weighted_sum_scores_psr_grids_as_their_upsampled_maps():
    """score_cells of a sum of confusion rewards (what RSSHead calls on PSR
    grids) equals the sum's own reward of the upsampled maps; with a part
    that cannot score cells the sum has no score_cells either."""
    gen = torch.Generator().manual_seed(1)
    reference = torch.randint(0, C, (2, 12, 10), generator=gen)
    reference[1, :, :2] = 255
    samples = make_data_samples(reference)
    cells = torch.randint(0, C, (4, 2, 3, 5), generator=gen)
    reward = REWARDS['weighted sum']()
    rewards, valid = reward.score_cells(cells, samples)
    expected, expected_valid = reward(upsample_actions(cells, (12, 10)),
                                      samples)
    assert torch.allclose(rewards, expected, atol=1e-6)
    assert valid.tolist() == expected_valid.tolist() == [True, True]
    assert rewards.std() > 0.01
    mixed = WeightedSumReward(
        [ImageMIoUReward(), BoundaryFScoreReward(num_classes=C)])
    assert not hasattr(mixed, 'score_cells')
