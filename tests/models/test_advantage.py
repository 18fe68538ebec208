"""SyncAN: one process and N gloo ranks give the same advantages."""
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from rss_mmseg.models import (PixelMatchReward, PixelPolicy, PixelRewardLoss,
                              global_moments, sync_normalize)
from tests.conftest import rank_start_method
from tests.models.utils import make_data_samples

WORLD_SIZE = 2


def _batch(seed=0):
    """Returns (K=3, B=4, 5, 6) with a ragged valid mask (B, 5, 6)."""
    gen = torch.Generator().manual_seed(seed)
    values = torch.randn(3, 4, 5, 6, generator=gen) * 2 + 1
    valid = torch.rand(4, 5, 6, generator=gen) > 0.3
    valid[3] = False  # an all-ignored image on the second rank
    valid[2, :2] = False
    return values, valid


def test_single_process_statistics():
    values, valid = _batch()
    mask = valid.expand_as(values)
    mean, std, count = global_moments(values, valid)
    assert count.item() == mask.sum().item()
    ref = values[mask].double()
    assert mean.item() == pytest.approx(ref.mean().item(), rel=1e-9)
    assert std.item() == pytest.approx(ref.std(unbiased=False).item(),
                                       rel=1e-9)
    adv, _, _ = sync_normalize(values, valid)
    torch.testing.assert_close(
        adv[mask], ((ref - ref.mean()) / (ref.std(unbiased=False) + 1e-6)
                    ).float())
    assert (adv[~mask] == 0).all()
    centred, _, _ = sync_normalize(values, valid, normalize_std=False)
    torch.testing.assert_close(centred[mask], (ref - ref.mean()).float())


def test_empty_mask_is_finite():
    values, _ = _batch()
    adv, mean, std = sync_normalize(values, torch.zeros(4, 5, 6, dtype=bool))
    assert torch.isfinite(adv).all() and (adv == 0).all()
    assert mean.item() == 0 and std.item() == 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _rank_shard(tensor, rank, dim):
    return tensor.chunk(WORLD_SIZE, dim=dim)[rank]


def _pixel_loss_grad(values, actions, labels):
    """Gradient of a SyncAN PixelRewardLoss on fixed actions."""
    logits = values[0:1].permute(1, 0, 2, 3).repeat(1, 4, 1, 1)
    logits = logits.clone().requires_grad_()
    policy = PixelPolicy(logits)
    rewards, pix_valid = PixelMatchReward()(actions,
                                            make_data_samples(labels))
    loss = PixelRewardLoss(baseline='syncan')
    loss(policy, actions, rewards, pix_valid)['loss_pixel_reward'].backward()
    return logits.grad


def _inputs():
    values, valid = _batch()
    gen = torch.Generator().manual_seed(1)
    actions = torch.randint(0, 4, (2, 4, 5, 6), generator=gen)
    labels = torch.randint(0, 4, (4, 5, 6), generator=gen)
    labels[3] = 255
    return values, valid, actions, labels


def _worker(rank, port, out_dir):
    import torch.distributed as dist
    torch.set_num_threads(1)
    dist.init_process_group(
        'gloo',
        init_method=f'tcp://127.0.0.1:{port}',
        rank=rank,
        world_size=WORLD_SIZE)
    try:
        values, valid, actions, labels = _inputs()
        adv, mean, std = sync_normalize(
            _rank_shard(values, rank, 1), _rank_shard(valid, rank, 0))
        grad = _pixel_loss_grad(
            _rank_shard(values, rank, 1), _rank_shard(actions, rank, 1),
            _rank_shard(labels, rank, 0))
        torch.save(dict(adv=adv, mean=mean, std=std, grad=grad),
                   os.path.join(out_dir, f'rank{rank}.pt'))
    finally:
        dist.destroy_process_group()


def test_two_gloo_ranks_match_one_process(tmp_path):
    # torch resets its thread pool in forked children, as it does for
    # DataLoader workers
    mp.start_processes(
        _worker,
        args=(_free_port(), str(tmp_path)),
        nprocs=WORLD_SIZE,
        join=True,
        start_method=rank_start_method())
    outs = [
        torch.load(tmp_path / f'rank{r}.pt') for r in range(WORLD_SIZE)
    ]
    values, valid, actions, labels = _inputs()
    adv, mean, std = sync_normalize(values, valid)
    torch.testing.assert_close(torch.cat([o['adv'] for o in outs], 1), adv)
    for out in outs:  # every rank uses the global statistics
        torch.testing.assert_close(out['mean'], mean)
        torch.testing.assert_close(out['std'], std)
    # The loss averages over the rank's pixels and DDP averages the ranks'
    # gradients: the mean of the rank gradients is the one-process one.
    grad = _pixel_loss_grad(values, actions, labels)
    rank_grads = torch.cat([o['grad'] for o in outs], 0) / WORLD_SIZE
    torch.testing.assert_close(rank_grads, grad)
