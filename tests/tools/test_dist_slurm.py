"""Multi-node launchers and the resume of a distributed run, on 2 CPU
processes (gloo).

1. ``tools/dist_train.sh CONFIG 2`` trains image-level RSS (PSD with SyncAN,
   ``region_norm='mean'`` and the adaptive entropy weight) for 4 iterations,
   with checkpoints at 2 and 4 and a different random stream on each rank
   (``randomness.diff_rank_seed=True``).
2. ``tools/slurm_train.sh`` resumes that run from ``iter_2.pth`` to 4 as a
   2-task slurm job on two (fake) nodes; ``tools/slurm_test.sh`` evaluates
   the result with 2 tasks on one node.

There is no slurm here, so ``srun`` and ``scontrol`` on PATH are stand-ins
(written below): ``srun`` records its options and command, then runs the
command ``--ntasks`` times with the variables slurm gives each task
(``SLURM_PROCID``, ``SLURM_LOCALID``, ``SLURM_NTASKS``, ``SLURM_NODELIST``,
...); ``scontrol show hostnames`` lists every fake node as 127.0.0.1.

Checks: the scripts' arguments reach srun and train.py/test.py (work dirs
with a space in their names: they are passed quoted); ``--launcher slurm``
starts one gloo group of both tasks on a CPU machine (train.py and test.py);
the ranks train on different images with bit-identical parameters; the
resumed run ends with the uninterrupted run's parameters and optimizer
state, bit for bit, because each rank got its own RNG states back from the
checkpoint (RandomStateHook), which the per-rank RNG checksums show.
"""
import json
import os
import os.path as osp
import socket
import subprocess
import sys

import pytest
import torch

from tests.conftest import (REPO_ROOT, as_cfg_options, cpu_env,
                            tiny_run_overrides)
from tests.tools.dist_probe import write_probe_config

CONFIG = osp.join(REPO_ROOT, 'configs/rss',
                  'rss-image_fast-scnn_1xb8-1k_synthetic-128x128.py')
LEVEL_OVERRIDES = {
    'model.decode_head.num_samples': 4,
    'model.decode_head.loss.normalize': 'syncan',
    'model.decode_head.loss.region_norm': 'mean',
    'model.decode_head.loss.entropy_target': 0.5,
    'model.decode_head.loss.entropy_rate': 0.5,
    # a different random stream per rank, so that a rank restoring another
    # rank's RNG state would show
    'randomness.diff_rank_seed': True,
}
ITERS, INTERVAL = 4, 2

FAKE_SRUN = '''#!{python}
"""Fake srun: run the command --ntasks times with slurm's task variables."""
import json, os, subprocess, sys, time

args, opts, i = sys.argv[1:], {{}}, 0
while i < len(args) and args[i].startswith('-'):
    if '=' in args[i]:
        key, value = args[i].lstrip('-').split('=', 1)
        i += 1
    else:  # -p PARTITION and friends
        key, value = args[i].lstrip('-'), args[i + 1]
        i += 2
    opts[key] = value
command = args[i:]
with open(os.environ['FAKE_SLURM_LOG'], 'a') as f:
    f.write(json.dumps(dict(tool='srun', opts=opts, command=command)) + '\\n')
ntasks = int(opts['ntasks'])
per_node = min(int(opts.get('ntasks-per-node', ntasks)), ntasks)
nodes = -(-ntasks // per_node)
nodelist = 'fake0' if nodes == 1 else f'fake[0-{{nodes - 1}}]'
procs = []
for rank in range(ntasks):
    env = dict(
        os.environ,
        SLURM_JOB_ID='4242', SLURM_STEP_ID='0',
        SLURM_JOB_NAME=opts['job-name'], SLURM_JOB_PARTITION=opts['p'],
        SLURM_PROCID=str(rank), SLURM_LOCALID=str(rank % per_node),
        SLURM_NODEID=str(rank // per_node), SLURM_NTASKS=str(ntasks),
        SLURM_NPROCS=str(ntasks), SLURM_NNODES=str(nodes),
        SLURM_NODELIST=nodelist, SLURM_JOB_NODELIST=nodelist,
        SLURMD_NODENAME=f'fake{{rank // per_node}}',
        SLURM_CPUS_PER_TASK=opts['cpus-per-task'])
    procs.append(subprocess.Popen(command, env=env))
codes = [None] * ntasks
while None in codes:
    time.sleep(0.2)
    codes = [p.poll() for p in procs]
    if opts.get('kill-on-bad-exit') == '1' and any(codes):
        for p in procs:
            if p.poll() is None:
                p.kill()
        codes = [p.wait() for p in procs]
sys.exit(max(abs(c) for c in codes))
'''

FAKE_SCONTROL = '''#!{python}
"""Fake scontrol: `show hostnames fake[0-N]`, every node is this machine."""
import json, os, re, sys

with open(os.environ['FAKE_SLURM_LOG'], 'a') as f:
    f.write(json.dumps(dict(tool='scontrol', args=sys.argv[1:])) + '\\n')
assert sys.argv[1:3] == ['show', 'hostnames'], sys.argv
match = re.fullmatch(r'fake\\[(\\d+)-(\\d+)\\]', sys.argv[3])
count = int(match[2]) - int(match[1]) + 1 if match else 1
print('\\n'.join(['127.0.0.1'] * count))
'''


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


@pytest.fixture(scope='module')
def fake_slurm(tmp_path_factory):
    """PATH and environment of the fake slurm; its log's path."""
    bin_dir = tmp_path_factory.mktemp('fake_slurm_bin')
    for name, text in (('srun', FAKE_SRUN), ('scontrol', FAKE_SCONTROL)):
        path = bin_dir / name
        path.write_text(text.format(python=sys.executable))
        path.chmod(0o755)
    log = str(bin_dir / 'calls.jsonl')
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith('SLURM_') and k not in ('MASTER_ADDR', 'RANK',
                                                   'WORLD_SIZE', 'LOCAL_RANK')
    }
    env.update(
        PATH=f'{bin_dir}{os.pathsep}{env["PATH"]}',
        FAKE_SLURM_LOG=log,
        PYTHON=sys.executable,
        OMP_NUM_THREADS='1',
        PYTHONPATH=REPO_ROOT)
    # two tasks on one machine: a CPU gloo group (one GPU cannot hold two
    # NCCL ranks)
    return cpu_env(env), log


def _calls(log, tool):
    with open(log) as f:
        return [c for c in map(json.loads, f) if c['tool'] == tool]


def _run(script, args, env, **variables):
    env = dict(env, MASTER_PORT=str(_free_port()), **variables)
    result = subprocess.run(['bash', osp.join(REPO_ROOT, 'tools', script)] +
                            args,
                            cwd=REPO_ROOT,
                            env=env,
                            capture_output=True,
                            text=True,
                            timeout=300)
    assert result.returncode == 0, (
        result.stdout[-3000:] + result.stderr[-5000:])
    return result


def _overrides(data_root: str) -> dict:
    overrides = tiny_run_overrides(data_root, 'unused', ITERS)
    overrides.pop('work_dir')  # passed as --work-dir
    overrides.update(LEVEL_OVERRIDES)
    overrides.update({
        'default_hooks.checkpoint.interval': INTERVAL,
        'train_cfg.val_begin': ITERS + 1,  # no validation: short
    })
    return overrides


@pytest.fixture(scope='module')
def runs(fake_slurm, synthetic_root, tmp_path_factory):
    """The uninterrupted torchrun run and its slurm resume from iter 2."""
    env, log = fake_slurm
    root = tmp_path_factory.mktemp('dist_resume')
    cfg_path = write_probe_config(CONFIG, str(root / 'probe_cfg.py'))
    # (no space in full: --cfg-options values lose their spaces, mmengine)
    full, resumed = str(root / 'full'), str(root / 'resumed run')
    options = ['--cfg-options', *as_cfg_options(_overrides(synthetic_root))]
    _run('dist_train.sh', [cfg_path, '2', '--work-dir', full, *options], env,
         PORT=str(_free_port()))
    # --resume with load_from: resume from that checkpoint (mmengine)
    py_args = [
        '--work-dir', resumed, '--resume', *options,
        f'load_from={osp.join(full, f"iter_{INTERVAL}.pth")}'
    ]
    result = _run(
        'slurm_train.sh', ['rss-part', 'rss-job', cfg_path, *py_args],
        env,
        GPUS='2',
        GPUS_PER_NODE='1',
        CPUS_PER_TASK='1')
    return dict(
        data_root=synthetic_root,
        cfg_path=cfg_path,
        full=full,
        resumed=resumed,
        py_args=py_args,
        output=result.stdout + result.stderr,
        srun=_calls(log, 'srun'),
        scontrol=_calls(log, 'scontrol'))


def _probe(work_dir, rank, it):
    return torch.load(
        osp.join(work_dir, f'probe_rank{rank}_iter{it}.pth'),
        weights_only=True)


def _checkpoint(work_dir, it):
    return torch.load(
        osp.join(work_dir, f'iter_{it}.pth'), weights_only=True)


def test_slurm_train_arguments_reach_srun_and_train_py(runs):
    [call] = runs['srun']
    assert call['opts'] == {
        'p': 'rss-part',
        'job-name': 'rss-job',
        'gres': 'gpu:1',
        'ntasks': '2',
        'ntasks-per-node': '1',
        'cpus-per-task': '1',
        'kill-on-bad-exit': '1',
    }
    assert call['command'] == [
        sys.executable, '-u',
        osp.join(REPO_ROOT, 'tools', 'train.py'), runs['cfg_path'],
        '--launcher=slurm', *runs['py_args']
    ]
    # the master address came from the job's node list, once per rank
    assert [c['args'] for c in runs['scontrol']] == [
        ['show', 'hostnames', 'fake[0-1]']
    ] * 2
    assert 'Distributed launcher: slurm' in runs['output']
    # train.py got --work-dir, --resume and --cfg-options
    assert 'resumed epoch: 0, iter: 2' in runs['output']
    assert sorted(f for f in os.listdir(runs['resumed'])
                  if f.startswith('iter_')) == [f'iter_{ITERS}.pth']


def test_slurm_ranks_train_as_one_group(runs):
    sums = []
    for it in range(INTERVAL + 1, ITERS + 1):
        r0, r1 = (_probe(runs['resumed'], r, it) for r in (0, 1))
        assert (r0['rank'], r1['rank']) == (0, 1)
        assert r0['world_size'] == r1['world_size'] == 2
        # DDP: different data on the two ranks, identical parameters
        assert not torch.equal(r0['images'], r1['images'])
        assert r0['param_sha'] == r1['param_sha'], f'iter {it}'
        # SyncAN and the mean region all-reduced: same statistics
        assert r0['syncan_calls'] and len(r0['syncan_calls']) == len(
            r1['syncan_calls'])
        for c0, c1 in zip(r0['syncan_calls'], r1['syncan_calls']):
            assert torch.equal(c0['out'], c1['out'])
        sums.append(r0['param_sum'])
    assert len(set(sums)) == ITERS - INTERVAL  # the parameters did train


def test_resumed_run_ends_bit_identical(runs):
    stop = _checkpoint(runs['full'], INTERVAL)
    states = stop['rss_random_state']
    assert states['world_size'] == 2 and len(states['states']) == 2
    # the ranks' streams differ: restoring the wrong one would show
    assert not torch.equal(states['states'][0]['torch'],
                           states['states'][1]['torch'])
    for rank in (0, 1):
        for it in range(INTERVAL + 1, ITERS + 1):
            full, resumed = (_probe(runs[k], rank, it)
                             for k in ('full', 'resumed'))
            assert resumed['rng_sha'] == full['rng_sha'], (rank, it)
            assert torch.equal(resumed['images'], full['images'])
            assert resumed['param_sha'] == full['param_sha'], (rank, it)
        assert _probe(runs['full'], 0, ITERS)['rng_sha'] != _probe(
            runs['full'], 1, ITERS)['rng_sha']

    expected = _checkpoint(runs['full'], ITERS)
    got = _checkpoint(runs['resumed'], ITERS)
    assert got['meta']['iter'] == expected['meta']['iter'] == ITERS
    assert list(got['state_dict']) == list(expected['state_dict'])
    changed = 0
    for key, value in expected['state_dict'].items():
        assert torch.equal(got['state_dict'][key], value), key
        changed += not torch.equal(stop['state_dict'][key], value)
    assert changed > 0
    # the adapted entropy weight (a buffer DDP does not synchronize)
    assert 'decode_head.losses.0.entropy.weight' in expected['state_dict']

    def flat(state):
        return torch.cat([
            t.flatten().double() for s in state['state'].values()
            for t in s.values() if torch.is_tensor(t)
        ])

    assert torch.equal(
        flat(got['optimizer']), flat(expected['optimizer']))


def test_slurm_test_evaluates_on_two_tasks(runs, fake_slurm, tmp_path):
    env, log = fake_slurm
    checkpoint = osp.join(runs['resumed'], f'iter_{ITERS}.pth')
    work_dir = str(tmp_path / 'test dir')
    py_args = [
        '--work-dir', work_dir, '--cfg-options',
        f'test_dataloader.dataset.data_root={runs["data_root"]}',
        'test_dataloader.num_workers=0',
        'test_dataloader.persistent_workers=False'
    ]
    result = _run(
        'slurm_test.sh',
        ['rss-part', 'rss-test', runs['cfg_path'], checkpoint, *py_args],
        env,
        GPUS='2',
        GPUS_PER_NODE='2')
    call = _calls(log, 'srun')[-1]
    assert call['opts']['ntasks'] == call['opts']['ntasks-per-node'] == '2'
    assert call['command'] == [
        sys.executable, '-u',
        osp.join(REPO_ROOT, 'tools', 'test.py'), runs['cfg_path'],
        checkpoint, '--launcher=slurm', *py_args
    ]
    output = result.stdout + result.stderr
    assert 'Distributed launcher: slurm' in output
    assert 'GPU number: 2' in output  # mmengine's world size
    # rank 0 wrote the metrics of the whole (sharded) test set
    [metrics] = [
        osp.join(dirpath, f) for dirpath, _, files in os.walk(work_dir)
        for f in files if f.endswith('.json')
    ]
    with open(metrics) as f:
        assert 'mIoU' in json.load(f)


def test_slurm_env_mirrors_mmengine(monkeypatch, fake_slurm):
    """``slurm_dist_env`` (CPU path) sets what mmengine's slurm init sets;
    MASTER_ADDR wins over the node list; a missing scontrol is an error
    that says what to set."""
    from rss_mmseg.utils.distributed import slurm_dist_env
    env, _ = fake_slurm
    for key in ('MASTER_ADDR', 'MASTER_PORT', 'RANK', 'WORLD_SIZE',
                'LOCAL_RANK'):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv('FAKE_SLURM_LOG', env['FAKE_SLURM_LOG'])
    monkeypatch.setenv('PATH', env['PATH'])
    monkeypatch.setenv('SLURM_PROCID', '3')
    monkeypatch.setenv('SLURM_NTASKS', '4')
    monkeypatch.setenv('SLURM_LOCALID', '1')
    monkeypatch.setenv('SLURM_NODELIST', 'fake[0-1]')
    slurm_dist_env(port=29123)
    assert {
        k: os.environ[k]
        for k in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR',
                  'MASTER_PORT')
    } == dict(
        RANK='3',
        WORLD_SIZE='4',
        LOCAL_RANK='1',
        MASTER_ADDR='127.0.0.1',
        MASTER_PORT='29123')

    monkeypatch.setenv('MASTER_ADDR', 'node-a')
    monkeypatch.setenv('PATH', '')  # no scontrol: not needed
    slurm_dist_env()
    assert os.environ['MASTER_ADDR'] == 'node-a'
    assert os.environ['MASTER_PORT'] == '29123'  # kept from the env

    monkeypatch.delenv('MASTER_ADDR')
    with pytest.raises(RuntimeError, match='set MASTER_ADDR'):
        slurm_dist_env()
