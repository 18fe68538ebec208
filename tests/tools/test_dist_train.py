"""tools/dist_train.sh trains pixel and image RSS with SyncAN on 2 CPU
processes.

Checks inside the real distributed run (tests/tools/dist_probe.py dumps what
each rank saw): the ranks train on different images, the SyncAN statistics
each rank used are identical and equal to the single-process statistics of
the concatenated batch, and the parameters stay bit-identical on both ranks
while they change from step to step.
"""
import os
import os.path as osp
import socket
import subprocess
import sys

import pytest
import torch

from rss_mmseg.models.advantage import global_moments, global_sums
from tests.conftest import (REPO_ROOT, as_cfg_options, cpu_env,
                            tiny_run_overrides)
from tests.tools.dist_probe import write_probe_config

CONFIGS = {
    # pixel rewards, PixelRewardLoss(baseline='syncan')
    'pixel': ('rss-pixel_fast-scnn_1xb8-1k_synthetic-128x128.py', {
        'model.decode_head.loss.baseline': 'syncan'
    }),
    # image rewards, PSR grid + PSDLoss with SyncAN over the pairs and the
    # mean differing region of the global batch
    'image': ('rss-image_fast-scnn_1xb8-1k_synthetic-128x128.py', {
        'model.decode_head.num_samples': 4,
        'model.decode_head.loss.normalize': 'syncan',
        'model.decode_head.loss.region_norm': 'mean',
    }),
}
ITERS = 3


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _flat_cat(tensors):
    return torch.cat([t.flatten() for t in tensors])


@pytest.fixture(scope='module', params=sorted(CONFIGS))
def dist_run(request, synthetic_root, tmp_path_factory):
    """Run dist_train.sh once with 2 processes; return its work dir."""
    name, level_overrides = CONFIGS[request.param]
    work_dir = str(tmp_path_factory.mktemp(f'dist_{request.param}'))
    cfg_path = write_probe_config(
        osp.join(REPO_ROOT, 'configs/rss', name),
        osp.join(work_dir, 'dist_cfg.py'))

    overrides = tiny_run_overrides(synthetic_root, work_dir, ITERS)
    overrides.update(level_overrides)
    overrides['train_cfg.val_begin'] = ITERS + 1  # no validation: short
    # two ranks on one machine: a CPU gloo group (one GPU cannot hold two
    # NCCL ranks)
    env = cpu_env(dict(
        os.environ,
        PYTHON=sys.executable,
        PORT=str(_free_port()),
        OMP_NUM_THREADS='1',
        PYTHONPATH=REPO_ROOT))
    result = subprocess.run([
        'bash',
        osp.join(REPO_ROOT, 'tools/dist_train.sh'), cfg_path, '2',
        '--cfg-options', *as_cfg_options(overrides)
    ],
                            cwd=REPO_ROOT,
                            env=env,
                            capture_output=True,
                            text=True,
                            timeout=300)
    assert result.returncode == 0, (
        result.stdout[-3000:] + result.stderr[-5000:])
    return work_dir


def _probe(work_dir, rank, it):
    return torch.load(
        osp.join(work_dir, f'probe_rank{rank}_iter{it}.pth'),
        weights_only=True)


def test_ranks_keep_identical_parameters(dist_run):
    sums = []
    for it in range(1, ITERS + 1):
        r0, r1 = _probe(dist_run, 0, it), _probe(dist_run, 1, it)
        assert (r0['rank'], r1['rank']) == (0, 1)
        assert r0['world_size'] == r1['world_size'] == 2
        assert r0['param_sha'] == r1['param_sha'], f'iter {it}'
        # different shards of the data on the two ranks
        assert not torch.equal(r0['images'], r1['images'])
        sums.append(r0['param_sum'])
    assert len(set(sums)) == ITERS  # the parameters did train
    ckpt = torch.load(
        osp.join(dist_run, f'iter_{ITERS}.pth'), weights_only=True)
    assert ckpt['rss_random_state']['world_size'] == 2
    assert len(ckpt['rss_random_state']['states']) == 2


def test_syncan_statistics_are_global(dist_run):
    for it in range(1, ITERS + 1):
        r0, r1 = _probe(dist_run, 0, it), _probe(dist_run, 1, it)
        # global_moments over each rank's own images
        expected = torch.stack(
            global_moments(torch.cat([r0['images'], r1['images']]).double()))
        assert torch.equal(r0['moments'], r1['moments'])
        torch.testing.assert_close(r0['moments'], expected, rtol=1e-12, atol=0)
        # the statistics the loss's SyncAN trained with
        calls0, calls1 = r0['syncan_calls'], r1['syncan_calls']
        assert len(calls0) == len(calls1) >= 1, f'iter {it}: no SyncAN call'
        for c0, c1 in zip(calls0, calls1):
            assert torch.equal(c0['out'], c1['out'])
            local0 = global_sums(c0['tensors'], c0['valid'], c0['repeats'])
            assert not torch.equal(local0, c0['out'])  # really reduced
            tensors = [
                _flat_cat([a, b]) for a, b in zip(c0['tensors'],
                                                  c1['tensors'])
            ]
            valid = None if c0['valid'] is None else _flat_cat(
                [c0['valid'], c1['valid']])
            concat = global_sums(tensors, valid, c0['repeats'])
            torch.testing.assert_close(c0['out'], concat, rtol=1e-12, atol=0)
