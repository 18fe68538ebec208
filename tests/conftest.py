"""Shared fixtures: paths, a small synthetic dataset, the real CamVid copy."""
import importlib.util
import os
import os.path as osp
import subprocess
import sys
from types import ModuleType
from typing import Any, Dict, List, Sequence

import pytest

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
SYNTHETIC_CONFIG = osp.join(
    REPO_ROOT, 'configs/baselines/ce_fast-scnn_1xb8-1k_synthetic-128x128.py')
CAMVID_SRC = os.environ.get(
    'RSS_CAMVID_SRC', osp.join(REPO_ROOT, '..', 'shared', 'data', 'camvid'))


@pytest.fixture(scope='session', autouse=True)
def mmseg_default_scope():
    """Build components from mmseg's registries, as tools/train.py does."""
    from mmseg.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    import rss_mmseg  # noqa: F401


@pytest.fixture(scope='session')
def synthetic_root(tmp_path_factory) -> str:
    """A small synthetic dataset (16 train / 4 val images of 64x64)."""
    from rss_mmseg.datasets.synthetic import generate_synthetic_dataset
    root = str(tmp_path_factory.mktemp('synthetic'))
    return generate_synthetic_dataset(
        root, num_train=16, num_val=4, size=64, seed=0)


@pytest.fixture(scope='session')
def camvid_src() -> str:
    """The SegNet-layout CamVid copy in ../shared, or skip with the reason."""
    if not osp.isfile(osp.join(CAMVID_SRC, 'train.txt')):
        pytest.skip(f'real CamVid not found at {osp.abspath(CAMVID_SRC)} '
                    '(set RSS_CAMVID_SRC to a SegNet CamVid folder)')
    return CAMVID_SRC


def tiny_run_overrides(data_root: str, work_dir: str, max_iters: int,
                       batch_size: int = 2) -> Dict[str, Any]:
    """Config overrides that shrink a synthetic config to a seconds-long run."""
    overrides = {
        'work_dir': work_dir,
        'train_cfg.max_iters': max_iters,
        'train_cfg.val_interval': max_iters,
        'default_hooks.checkpoint.interval': max_iters,
        'default_hooks.logger.interval': 1,
        'train_dataloader.batch_size': batch_size,
        'model.data_preprocessor.size': (64, 64),
    }
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        overrides[f'{loader}.dataset.data_root'] = data_root
        overrides[f'{loader}.num_workers'] = 0
        overrides[f'{loader}.persistent_workers'] = False
    return overrides


def rank_start_method() -> str:
    """How the gloo-rank tests start their two processes.

    ``fork``: the children inherit the imports (``spawn`` re-imports mmseg,
    ~10 s each). Where CUDA is present a pytest worker may already have run
    autograd on the GPU, whose threads a forked child cannot use, so the
    ranks are spawned there.
    """
    import torch
    return 'spawn' if torch.cuda.is_available() else 'fork'


def cpu_env(env: Dict[str, str]) -> Dict[str, str]:
    """``env`` with no GPU visible: for subprocess runs whose claim is about
    the CPU (two gloo ranks on one machine, a bit-identical resume)."""
    return dict(env, CUDA_VISIBLE_DEVICES='')


def as_cfg_options(overrides: Dict[str, Any]) -> List[str]:
    """Format overrides for the tools' ``--cfg-options``."""
    return [f'{key}={value}' for key, value in overrides.items()]


def run_tool(script: str,
             args: Sequence[str],
             timeout: int = 600,
             cpu: bool = False) -> subprocess.CompletedProcess:
    """Run ``tools/<script>`` in a subprocess from the repository root
    (``cpu``: with no GPU visible, see :func:`cpu_env`)."""
    env = dict(os.environ, PYTHONPATH=REPO_ROOT, OMP_NUM_THREADS='2')
    if cpu:
        env = cpu_env(env)
    return subprocess.run(
        [sys.executable, osp.join(REPO_ROOT, 'tools', script), *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout)


def load_tool(relpath: str, name: str) -> ModuleType:
    """A script under ``tools/`` as a module; the ``sys.path`` entries its
    import adds (e.g. ``tools/``, whose test.py would shadow the standard
    library's ``test``) are removed again."""
    saved = list(sys.path)
    try:
        spec = importlib.util.spec_from_file_location(
            name, osp.join(REPO_ROOT, 'tools', relpath))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path[:] = saved
    return module


def final_val_miou(work_dir: str) -> float:
    """The last ``mIoU`` a training logged to ``<work_dir>/*/vis_data``
    (read by ``tools/analysis_tools/bench_report.py``'s ``load_scalars``)."""
    report = load_tool('analysis_tools/bench_report.py', 'rss_bench_report')
    _, val = report.load_scalars(work_dir)
    if not val:
        raise AssertionError(f'no val mIoU logged under {work_dir}')
    return val[max(val)]['mIoU']


def train_side_by_side(runs: Sequence[Dict[str, Any]],
                       jobs: int = 2,
                       timeout: int = 1800) -> List[float]:
    """Train ``tools/train.py`` runs, ``jobs`` at a time (one thread each).

    Each run is ``dict(config=..., work_dir=..., options={key: value})``;
    returns their final val mIoU, in order. On a 2-core machine two runs
    side by side take about the time of one run on both cores.
    """
    import time
    env = dict(os.environ, PYTHONPATH=REPO_ROOT, OMP_NUM_THREADS='1')
    pending, running, results = list(enumerate(runs)), [], {}
    deadline = time.monotonic() + timeout
    while pending or running:
        while pending and len(running) < jobs:
            index, run = pending.pop(0)
            os.makedirs(run['work_dir'], exist_ok=True)
            log = open(osp.join(run['work_dir'], 'train.log'), 'w')
            cmd = [
                sys.executable,
                osp.join(REPO_ROOT, 'tools', 'train.py'), run['config'],
                '--work-dir', run['work_dir'], '--cfg-options',
                *as_cfg_options(run.get('options', {}))
            ]
            running.append((index, run, log,
                            subprocess.Popen(
                                cmd,
                                cwd=REPO_ROOT,
                                env=env,
                                stdout=log,
                                stderr=subprocess.STDOUT)))
        time.sleep(1)
        for item in list(running):
            index, run, log, proc = item
            if proc.poll() is None:
                if time.monotonic() > deadline:
                    for *_, other in running:
                        other.kill()
                    raise AssertionError(f'{run["work_dir"]}: timed out')
                continue
            running.remove(item)
            log.close()
            if proc.returncode != 0:
                for *_, other in running:
                    other.kill()
                with open(log.name) as f:
                    tail = f.read()[-3000:]
                raise AssertionError(
                    f'training {run["config"]} failed:\n{tail}')
            results[index] = final_val_miou(run['work_dir'])
    return [results[i] for i in range(len(runs))]
