"""Every GPU-scale RSS config trains and tests on a CPU, on fake copies of
its dataset in the real on-disk layout.

For each config in configs/rss that is not a CPU one (``*_synthetic-*``,
``*_camvid-*``), found by ``tests/gpu_dry_run.py``'s ``gpu_scale_configs`` so
a new config is picked up here automatically: ``tools/train.py CONFIG`` for
2 iterations, then ``tools/test.py CONFIG WORK_DIR/iter_2.pth``, with
mmseg's own dataset classes and the config's own pipelines, hooks and optim
wrapper. Only ``data_root``, sizes, iteration counts, the batch size,
worker processes and pretrained-weight downloads are overridden
(``dry_run_overrides``). The fake datasets come from
``rss_mmseg.datasets.fake_layouts``.

The fine-tuning configs that start from an mmseg model-zoo checkpoint
(``configs/rss/finetune/*_deeplabv3plus_*``: ``load_from`` is a URL) keep
that ``load_from``; the driver puts a stand-in with the zoo file's key layout
(the stock mmseg model of the config's ``mmseg::`` base, auxiliary head
included) where ``torch.hub`` caches the URL, so mmengine's http loader
"downloads" it from there. The test checks that the run loaded it through
that path and that no parameter of the model was missing from it.

AMP configs (``AmpOptimWrapper``) and one config trained with ``--amp`` run
the real AMP path in bf16 on the CPU (``tests/cpu_amp.py`` lifts the
wrapper's CUDA assertion); its probe checks that the decode head really ran
under CPU autocast and returned bf16 logits.

The runs go two at a time (one thread each; ``RSS_DRY_RUN_JOBS``), only
those of the selected tests (``-k``), slowest first. A run is named by its
config's path under configs/rss, so ``-k finetune`` selects the model-zoo
fine-tuning configs.
"""
import json
import os
import os.path as osp
import re
import resource
import subprocess
import sys
import time
from typing import Dict, List, Optional

import pytest

from tests.conftest import REPO_ROOT
from tests.gpu_dry_run import DRY_RUN_ITERS, gpu_scale_configs

CONFIGS = gpu_scale_configs()
RSS_CONFIGS = osp.join(REPO_ROOT, 'configs', 'rss')
# one config without AMP of its own, trained with tools/train.py --amp
AMP_FLAG_CONFIG = 'rss-pixel_deeplabv3plus_r50-d8_4xb4-40k_voc12aug-512x512.py'
AMP_FLAG_SUFFIX = ':--amp'
# a run is named by its config's path under configs/rss (``-k finetune``
# selects the ones in configs/rss/finetune)
RUNS = [osp.relpath(p, RSS_CONFIGS)
        for p in CONFIGS] + [AMP_FLAG_CONFIG + AMP_FLAG_SUFFIX]
# the configs this file was written for; any other GPU config is run too
EXPECTED = {
    f'rss-{level}_{name}.py'
    for level in ('pixel', 'image')
    for name in (
        'deeplabv3plus_r50-d8_4xb4-40k_voc12aug-512x512',
        'deeplabv3plus_r50-d8_4xb4-40k_pascal-context-59-480x480',
        'deeplabv3plus_r50-d8_4xb2-80k_cityscapes-512x1024',
        'deeplabv3plus_r101-d8_4xb2-amp-80k_cityscapes-512x1024',
        'convnext-tiny_upernet_8xb2-amp-160k_ade20k-512x512',
    )
} | {
    # reward fine-tuning from mmseg's model zoo and its two baselines
    f'finetune/{method}_deeplabv3plus_r50-d8_{schedule}.py'
    for method in ('ce-continued', 'lovasz-finetune', 'rss-finetune-miou-local')
    for schedule in ('4xb2-8k_cityscapes-512x1024', '4xb4-4k_voc12aug-512x512')
} | {
    'finetune/rss-finetune-miou-local_deeplabv3plus_r50-d8_'
    '4xb2-amp-8k_cityscapes-512x1024.py'
}
TIMEOUT_S = 1800


def _config_path(run: str) -> str:
    name = run[:-len(AMP_FLAG_SUFFIX)] if run.endswith(AMP_FLAG_SUFFIX) \
        else run
    return next(p for p in CONFIGS if osp.relpath(p, RSS_CONFIGS) == name)


def _cost(run: str) -> int:
    """Rough order of run time (bf16 convolutions are slow on a CPU):
    the slowest start first."""
    amp = '-amp-' in run or run.endswith(AMP_FLAG_SUFFIX)
    return 2 * amp + ('rss-image' in run) + ('convnext' in run)


class DryRuns:
    """Runs ``tests/gpu_dry_run.py`` for the selected runs, ``jobs`` at a
    time, and hands out each one's result when it has finished."""

    def __init__(self, runs: List[str], fake_root: str, base_dir: str,
                 jobs: int) -> None:
        self.pending = sorted(runs, key=_cost, reverse=True)
        self.fake_root, self.base_dir, self.jobs = fake_root, base_dir, jobs
        self.running: Dict[str, tuple] = {}
        self.done: Dict[str, dict] = {}
        self.deadline = time.monotonic() + TIMEOUT_S
        threads = max(1, (os.cpu_count() or 2) // jobs)
        self.env = dict(
            os.environ,
            PYTHONPATH=REPO_ROOT,
            OMP_NUM_THREADS=str(threads),
            CUDA_VISIBLE_DEVICES='')

    def _start(self, run: str) -> None:
        work_dir = osp.join(self.base_dir,
                            run.replace(':', '_').replace('/', '_'))
        os.makedirs(work_dir)
        log = open(osp.join(work_dir, 'dry_run.log'), 'w')
        cmd = [
            sys.executable,
            osp.join(REPO_ROOT, 'tests', 'gpu_dry_run.py'),
            _config_path(run), work_dir, '--fake-root', self.fake_root
        ]
        if run.endswith(AMP_FLAG_SUFFIX):
            cmd.append('--amp')
        proc = subprocess.Popen(
            cmd,
            cwd=REPO_ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT)
        self.running[run] = (proc, log, work_dir, time.monotonic())

    def _poll(self) -> None:
        for run, (proc, log, work_dir, start) in list(self.running.items()):
            # the CPU time of a child is added to RUSAGE_CHILDREN when it is
            # reaped (here, one at a time): a measure that the machine's
            # load does not inflate as it does wall time
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            if proc.poll() is None:
                if time.monotonic() > self.deadline:
                    proc.kill()
                    proc.wait()
                else:
                    continue
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = (
                after.ru_utime + after.ru_stime - before.ru_utime -
                before.ru_stime)
            log.close()
            with open(log.name) as f:
                output = f.read()
            self.done[run] = dict(
                returncode=proc.returncode,
                output=output,
                work_dir=work_dir,
                seconds=time.monotonic() - start,
                cpu_seconds=cpu)
            del self.running[run]
        while self.pending and len(self.running) < self.jobs:
            self._start(self.pending.pop(0))

    def result(self, run: str) -> dict:
        if run not in (*self.done, *self.running, *self.pending):
            self.pending.append(run)
        while run not in self.done:
            self._poll()
            time.sleep(0.5)
        return self.done[run]

    def close(self) -> None:
        self.pending.clear()
        for proc, log, _, _ in self.running.values():
            proc.kill()
            proc.wait()
            log.close()


@pytest.fixture(scope='module')
def fake_root(tmp_path_factory) -> str:
    """All fake layouts, as ``make_fake_datasets.py -o`` writes them."""
    from rss_mmseg.datasets.fake_layouts import make_fake_datasets
    root = str(tmp_path_factory.mktemp('fake_datasets'))
    make_fake_datasets(root, seed=0)
    return root


@pytest.fixture(scope='module')
def dry_runs(request, fake_root, tmp_path_factory):
    selected = [
        item.callspec.params['run'] for item in request.session.items
        if item.module is request.module and hasattr(item, 'callspec')
        and 'run' in item.callspec.params
    ]
    jobs = int(os.environ.get('RSS_DRY_RUN_JOBS', '2'))
    runs = DryRuns(selected, fake_root,
                   str(tmp_path_factory.mktemp('dry_runs')), jobs)
    yield runs
    runs.close()


def test_gpu_scale_configs_are_discovered():
    names = {osp.relpath(p, RSS_CONFIGS) for p in CONFIGS}
    assert names, 'no GPU-scale config found under configs/rss'
    assert EXPECTED <= names, sorted(EXPECTED - names)
    assert not any('_synthetic-' in n or '_camvid-' in n for n in names)


def _miou(output: str) -> Optional[float]:
    found = re.findall(r'Iter\(test\).*?mIoU: ([\d.]+)', output)
    return float(found[-1]) if found else None


@pytest.mark.parametrize('run', RUNS)
def test_trains_and_tests_on_cpu(run, dry_runs):
    result = dry_runs.result(run)
    output, work_dir = result['output'], result['work_dir']
    try:
        assert result['returncode'] == 0, (
            f'{run}: exit {result["returncode"]} after '
            f'{result["seconds"]:.0f} s\n{output[-6000:]}')
        assert osp.isfile(osp.join(work_dir, f'iter_{DRY_RUN_ITERS}.pth'))
        assert '[dry-run] train:' in output and '[dry-run] test:' in output
        test_output = output.split('[dry-run] train:', 1)[1]
        miou = _miou(test_output)
        assert miou is not None, f'{run}: no test mIoU\n{output[-3000:]}'
        assert 0.0 <= miou <= 100.0
        with open(osp.join(work_dir, 'dry_run.json')) as f:
            info = json.load(f)
        amp_expected = '-amp-' in run or run.endswith(AMP_FLAG_SUFFIX)
        assert info['amp'] == amp_expected
        if info['zoo_checkpoint']:
            _check_zoo_checkpoint(run, info['zoo_checkpoint'],
                                  output.split('[dry-run] train:', 1)[0])
        probe_path = osp.join(work_dir, 'amp_probe.json')
        if amp_expected:
            with open(probe_path) as f:
                probe = json.load(f)
            _check_cpu_amp(run, probe)
        else:
            assert not osp.exists(probe_path)
        print(f'\n{run}: train+test {result["seconds"]:.1f} s '
              f'({result["cpu_seconds"]:.1f} s CPU), test mIoU {miou}')
    finally:  # the checkpoints (and model-zoo stand-ins) are 0.2-0.8 GB
        for folder, _, names in os.walk(work_dir):
            for name in names:
                if name.endswith('.pth'):
                    os.remove(osp.join(folder, name))


def _check_zoo_checkpoint(run: str, zoo: dict, train_output: str) -> None:
    """The training loaded the model-zoo stand-in through mmengine's http
    loader (from torch.hub's cache, no download) and found every
    parameter of the model in it (the zoo model's extra ones, e.g. an
    auxiliary head the config drops, may go unused)."""
    assert zoo['path'].endswith(osp.basename(zoo['url'])), zoo
    assert ('Loads checkpoint by http backend from path: '
            f'{zoo["url"]}') in train_output, (run, train_output[-3000:])
    assert 'Downloading' not in train_output, run
    for problem in ('missing keys in source state_dict', 'size mismatch'):
        assert problem not in train_output, (run, train_output[-3000:])


def _check_cpu_amp(run: str, probe: dict) -> None:
    """The AMP path really ran: AmpOptimWrapper with a bf16 autocast, the
    decode head under CPU autocast returning bf16 logits from fp32
    parameters, and finite float32 losses."""
    assert probe['optim_wrapper'] == 'AmpOptimWrapper', probe
    assert probe['cast_dtype'] == 'torch.bfloat16', probe
    # torch.cuda.amp.GradScaler disables itself without CUDA
    assert probe['loss_scaler_enabled'] is False, probe
    iters = probe['iters']
    assert len(iters) == DRY_RUN_ITERS, probe
    for it in iters:
        assert it['autocast_cpu'] is True, (run, it)
        assert it['logits_dtype'] == 'torch.bfloat16', (run, it)
        assert it['param_dtype'] == 'torch.float32', (run, it)
        # rss_mmseg.models.policy computes the policy and the losses in
        # float32 from the half-precision logits
        assert it['loss_dtypes'], (run, it)
        assert set(it['loss_dtypes'].values()) == {'torch.float32'}, (run, it)
        assert all(v == v and abs(v) < float('inf')
                   for v in it['losses'].values()), (run, it)
