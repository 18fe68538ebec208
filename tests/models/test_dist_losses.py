"""The losses' all-reduces: 2 gloo ranks against one process.

Every case runs the same loss on 2 gloo ranks (each with half of the images)
and in one process on the whole batch, for a few steps on changing logits:

- the gradient of the logits, averaged over the ranks as DDP does, equals
  the one-process gradient image by image whenever the ranks hold as many
  valid images (pixel loss: pixels, with ``avg_non_ignore``) - always the
  case for PixelRewardLoss with ``avg_non_ignore=False``;
- with uneven valid counts the statistics stay global but each rank averages
  its loss over its own valid images: the averaged gradient of an image on
  rank ``r`` is the one-process gradient times ``V / (world_size * V_r)``
  (as for mmseg's CrossEntropyLoss with ``avg_non_ignore=True``);
- the logged statistics that are all-reduced (``cell_entropy``,
  ``entropy_coef``) and the adapted entropy weight (a buffer, not
  synchronized by DDP) are the one-process values on both ranks.

Covered here: PixelRewardLoss ``'mean'`` (on/off-policy) and ``'syncan'``
(off-policy, entropy bonus, ``avg_non_ignore``), PSRRewardLoss ``'batch'`` /
``'syncan'`` and PSDLoss ``'syncan'`` with ``region_norm='mean'``, both with
the adaptive entropy control (EntropyControl's global mean entropy). The
on-policy SyncAN pixel loss is in tests/models/test_advantage.py; the same
statistics inside a real ``tools/dist_train.sh`` run in
tests/tools/test_dist_train.py. A rank without a valid image still takes
part in every collective (no deadlock).
"""
import os
import socket
from typing import Dict, List

import pytest
import torch
import torch.multiprocessing as mp

from rss_mmseg.models.losses import PixelRewardLoss, PSDLoss, PSRRewardLoss
from rss_mmseg.models.policy import PixelPolicy
from tests.conftest import rank_start_method

WORLD_SIZE = 2
STEPS = 3
B, C, K = 4, 3, 4  # images (2 per rank), classes, samples
GLOBAL_STATS = ('cell_entropy', 'entropy_coef')

# image-level valid masks: (1, 1) valid images per rank, (0, 2), (2, 1)
EVEN = (True, False, False, True)
NONE_ON_RANK0 = (False, False, True, True)
UNEVEN = (True, True, True, False)

CASES = {
    'pixel_mean':
    dict(loss=lambda: PixelRewardLoss(baseline='mean')),
    'pixel_mean_off_policy':
    dict(
        loss=lambda: PixelRewardLoss(baseline='mean'),
        policy=dict(temperature=2.0, uniform_mix=0.1)),
    'pixel_syncan_off_policy_entropy':
    dict(
        loss=lambda: PixelRewardLoss(baseline='syncan', entropy_weight=0.05),
        policy=dict(temperature=1.5, uniform_mix=0.05)),
    'pixel_syncan_avg_non_ignore':
    dict(
        loss=lambda: PixelRewardLoss(baseline='syncan', avg_non_ignore=True)),
    'psr_batch_syncan_entropy_target':
    dict(
        loss=lambda: PSRRewardLoss(
            baseline='batch',
            normalize='syncan',
            entropy_weight=0.05,
            entropy_target=0.6,
            entropy_rate=0.5,
            uniform_weight=0.01),
        valid=EVEN),
    'psr_loo_syncan_uneven':
    dict(
        loss=lambda: PSRRewardLoss(
            baseline='loo',
            normalize='syncan',
            entropy_weight=0.05,
            entropy_target=0.6,
            entropy_rate=0.5),
        valid=NONE_ON_RANK0),
    'psd_syncan_region_mean_entropy_target':
    dict(
        loss=lambda: PSDLoss(
            region_norm='mean',
            normalize='syncan',
            entropy_weight=0.05,
            entropy_target=0.6,
            entropy_rate=0.5),
        valid=EVEN),
    'psd_syncan_region_mean_uneven':
    dict(
        loss=lambda: PSDLoss(
            region_norm='mean',
            normalize='syncan',
            entropy_weight=0.05,
            entropy_target=0.6,
            entropy_rate=0.5),
        valid=UNEVEN),
}


def _problem(name: str, step: int):
    """(logits, actions, rewards, valid) of the whole batch at a step."""
    case = CASES[name]
    gen = torch.Generator().manual_seed(1000 * step + len(name))
    if name.startswith('pixel'):
        H, W = 5, 6
        logits = torch.randn(B, C, H, W, generator=gen) * 1.5
        actions = torch.randint(0, C, (2, B, H, W), generator=gen)
        rewards = torch.rand(2, B, H, W, generator=gen)
        valid = torch.rand(B, H, W, generator=gen) > 0.3
        valid[3] = False  # an all-ignored image on rank 1
        valid[0, :2] = False  # rank 0 has more valid pixels
        return logits, actions, rewards, valid
    h, w = 4, 4  # cells
    logits = torch.randn(B, C, h, w, generator=gen) * 1.5
    actions = torch.randint(0, C, (K, B, h, w), generator=gen)
    actions[1] = actions[0]  # pairs (0, 1) differ nowhere
    actions[2, :, :2] = actions[0, :, :2]  # and (0, 2) on half the cells
    rewards = torch.rand(K, B, generator=gen)
    valid = torch.tensor(case['valid'])
    return logits, actions, rewards, valid


def _shard(tensor: torch.Tensor, rank: int, dim: int) -> torch.Tensor:
    return tensor.chunk(WORLD_SIZE, dim=dim)[rank]


def _run_case(name: str, rank=None) -> List[Dict[str, torch.Tensor]]:
    """Steps of one case on the whole batch, or on ``rank``'s shard."""
    case = CASES[name]
    loss = case['loss']()
    results = []
    for step in range(STEPS):
        logits, actions, rewards, valid = _problem(name, step)
        if rank is not None:
            logits, valid = _shard(logits, rank, 0), _shard(valid, rank, 0)
            actions, rewards = (_shard(actions, rank, 1),
                                _shard(rewards, rank, 1))
        logits.requires_grad_()
        policy = PixelPolicy(logits, **case.get('policy', {}))
        out = loss(policy, actions, rewards, valid)
        out[loss.loss_name].backward()
        result = {k: v.detach().clone() for k, v in out.items()}
        result['grad'] = logits.grad.clone()
        result['valid'] = valid
        if hasattr(loss, 'entropy'):
            result['entropy_buffer'] = loss.entropy.weight.clone()
        results.append(result)
    return results


def _worker(rank: int, port: int, out_dir: str) -> None:
    import torch.distributed as dist
    torch.set_num_threads(1)
    dist.init_process_group(
        'gloo',
        init_method=f'tcp://127.0.0.1:{port}',
        rank=rank,
        world_size=WORLD_SIZE)
    try:
        results = {name: _run_case(name, rank) for name in CASES}
        torch.save(results, os.path.join(out_dir, f'rank{rank}.pt'))
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


@pytest.fixture(scope='module')
def rank_results(tmp_path_factory):
    """All cases on 2 gloo ranks, in one pair of processes (forked; spawned
    where CUDA is present, see ``rank_start_method``)."""
    out_dir = tmp_path_factory.mktemp('dist_losses')
    mp.start_processes(
        _worker,
        args=(_free_port(), str(out_dir)),
        nprocs=WORLD_SIZE,
        join=True,
        start_method=rank_start_method())
    return [
        torch.load(out_dir / f'rank{r}.pt', weights_only=True)
        for r in range(WORLD_SIZE)
    ]


def _valid_count(valid: torch.Tensor) -> float:
    return float(valid.sum())


@pytest.mark.parametrize('name', sorted(CASES))
def test_two_ranks_match_one_process(rank_results, name):
    single = _run_case(name)
    uses_local_count = (name.startswith('psr') or name.startswith('psd')
                        or name.endswith('avg_non_ignore'))
    for step in range(STEPS):
        ranks = [results[name][step] for results in rank_results]
        ref = single[step]
        # DDP averages the ranks' gradients
        expected = []
        for rank, out in enumerate(ranks):
            ref_grad = _shard(ref['grad'], rank, 0)
            if uses_local_count and _valid_count(out['valid']) > 0:
                # the loss is a mean over the rank's own valid entries
                ref_grad = ref_grad * (
                    _valid_count(ref['valid']) /
                    (WORLD_SIZE * _valid_count(out['valid'])))
            expected.append(ref_grad)
        averaged = torch.cat([out['grad'] for out in ranks]) / WORLD_SIZE
        torch.testing.assert_close(
            averaged,
            torch.cat(expected),
            rtol=1e-5,
            atol=1e-8,
            msg=lambda m: f'{name}, step {step}: {m}')
        assert averaged.abs().sum() > 0
        for key in GLOBAL_STATS:
            if key not in ref:
                continue
            assert torch.equal(ranks[0][key], ranks[1][key]), (name, key)
            torch.testing.assert_close(
                ranks[0][key], ref[key], rtol=1e-6, atol=0)
        if 'entropy_buffer' in ref:
            assert torch.equal(ranks[0]['entropy_buffer'],
                               ranks[1]['entropy_buffer'])
            torch.testing.assert_close(
                ranks[0]['entropy_buffer'],
                ref['entropy_buffer'],
                rtol=1e-9,
                atol=0)
    if 'entropy_coef' in single[0]:  # the weight did adapt
        coefs = {float(out['entropy_coef']) for out in single}
        assert len(coefs) == STEPS


def test_rank_statistics_are_really_reduced(rank_results):
    """The comparison above can fail: without the all-reduce (one process
    per shard) the SyncAN and entropy statistics differ from the global
    ones."""
    name = 'psd_syncan_region_mean_entropy_target'
    local = [_run_case(name, rank) for rank in range(WORLD_SIZE)]
    for rank in range(WORLD_SIZE):
        reduced = rank_results[rank][name][0]
        assert not torch.allclose(local[rank][0]['grad'], reduced['grad'])
        assert not torch.allclose(local[rank][0]['cell_entropy'],
                                  reduced['cell_entropy'])
