"""Local variants: one re-sampled block per sample, with policy marginals."""
import pytest
import torch

from rss_mmseg.models.pair_sampling import block_size, sample_local_variants

C = 3


def _probs(B=2, h=4, w=5, seed=0):
    """Different class probabilities in every cell, (B, C, h, w)."""
    gen = torch.Generator().manual_seed(seed)
    return torch.softmax(2 * torch.randn(B, C, h, w, generator=gen), 1)


def _chi_square(counts, probs, num):
    """Pearson statistic of class counts (B, C, h, w) over ``num`` draws
    (B, h, w) against ``probs``, and its degrees of freedom."""
    expected = probs * num.unsqueeze(1)
    stat = ((counts - expected)**2 / expected.clamp(min=1e-12)).sum()
    return stat.item(), (C - 1) * num.numel()


def _below_threshold(stat, dof):
    # chi-square(dof) mean dof, std sqrt(2 dof): 5 standard deviations
    return stat < dof + 5 * (2 * dof)**0.5


def test_shapes_and_blocks():
    probs = _probs()
    gen = torch.Generator().manual_seed(1)
    actions, mask = sample_local_variants(
        probs, 6, (2, 3), generator=gen, return_mask=True)
    assert actions.shape == (6, 2, 4, 5) and actions.dtype == torch.long
    assert mask.shape == actions.shape and mask.dtype == torch.bool
    assert not mask[0].any()
    # each variant's mask is exactly one 2 x 3 rectangle
    assert (mask[1:].sum((-2, -1)) == 6).all()
    rows = mask[1:].any(-1).sum(-1)
    cols = mask[1:].any(-2).sum(-1)
    assert (rows == 2).all() and (cols == 3).all()
    # outside its block every variant is sample 0
    base = actions[:1].expand_as(actions)
    assert torch.equal(actions[~mask], base[~mask])
    # without the mask: the same samples, and differences fit in a block
    gen = torch.Generator().manual_seed(1)
    again = sample_local_variants(probs, 6, (2, 3), generator=gen)
    assert torch.equal(again, actions)
    differ = actions[1:] != actions[:1]
    assert (differ.any(-1).sum(-1) <= 2).all()
    assert (differ.any(-2).sum(-1) <= 3).all()


def test_block_resamples_from_the_policy():
    """Inside its block, each variant's cells are fresh draws from probs
    (not copies of sample 0): per-cell class counts pass a chi-square test
    with (C-1) x cells degrees of freedom at 5 standard deviations, and a
    wrong reference distribution fails it."""
    probs = _probs()
    gen = torch.Generator().manual_seed(2)
    actions, mask = sample_local_variants(
        probs, 3001, (2, 2), generator=gen, return_mask=True)
    onehot = torch.nn.functional.one_hot(actions, C).permute(0, 1, 4, 2, 3)
    inside = mask.unsqueeze(2)
    counts = (onehot * inside).sum(0).double()
    num = mask.sum(0).double()
    assert num.min() > 150  # every cell is covered (corners: 1 in 12)
    stat, dof = _chi_square(counts, probs.double(), num)
    assert _below_threshold(stat, dof)
    # power: the same counts against sample 0's (deterministic) classes
    copies = torch.nn.functional.one_hot(actions[0], C).permute(0, 3, 1, 2)
    stat, dof = _chi_square(counts, 0.98 * copies + 0.01, num)
    assert not _below_threshold(stat, dof)


def test_base_sample_follows_the_policy():
    cell = torch.tensor([0.6, 0.3, 0.1])
    probs = cell.view(1, C, 1, 1).expand(4000, C, 2, 2)
    gen = torch.Generator().manual_seed(3)
    actions = sample_local_variants(probs, 2, (1, 1), generator=gen)
    counts = torch.nn.functional.one_hot(actions[0], C).sum((0, 1, 2))
    stat, dof = _chi_square(counts.double().view(1, C, 1, 1),
                            cell.double().view(1, C, 1, 1),
                            torch.tensor([[[16000.0]]], dtype=torch.float64))
    assert _below_threshold(stat, dof)


def test_block_position_is_uniform():
    probs = _probs(B=1, h=4, w=5)
    gen = torch.Generator().manual_seed(4)
    _, mask = sample_local_variants(
        probs, 6001, (2, 3), generator=gen, return_mask=True)
    m = mask[1:, 0]
    top = m.any(-1).float().argmax(-1)
    left = m.any(-2).float().argmax(-1)
    position = top * 3 + left  # 3 x 3 possible top-left corners
    counts = torch.bincount(position, minlength=9).double()
    expected = counts.sum() / 9
    stat = ((counts - expected)**2 / expected).sum().item()
    assert _below_threshold(stat, 8)
    assert counts.numel() == 9 and (counts > 0).all()


def test_fraction_and_single_sample():
    assert block_size(0.5, (4, 6)) == (2, 3)
    assert block_size(0.1, (4, 6)) == (1, 1)
    assert block_size(1.0, (4, 6)) == (4, 6)
    assert block_size((4, 6), (4, 6)) == (4, 6)
    probs = _probs()
    gen = torch.Generator().manual_seed(5)
    actions, mask = sample_local_variants(
        probs, 1, 0.5, generator=gen, return_mask=True)
    assert actions.shape == (1, 2, 4, 5) and not mask.any()
    # a block covering the whole grid re-samples everything
    _, mask = sample_local_variants(probs, 3, 1.0, return_mask=True)
    assert mask[1:].all()


@pytest.mark.parametrize('block', [(5, 1), (1, 6), (0, 2), (2, ), 0.0, 1.5, 2,
                                   (2.0, 2)])
def test_rejects_bad_blocks(block):
    with pytest.raises(ValueError, match='block'):
        sample_local_variants(_probs(), 2, block)


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match='num_samples'):
        sample_local_variants(_probs(), 0, (1, 1))
    with pytest.raises(ValueError, match='probs'):
        sample_local_variants(_probs()[0], 2, (1, 1))
