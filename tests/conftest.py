"""Shared fixtures: paths, a small synthetic dataset, the real CamVid copy."""
import os
import os.path as osp
import subprocess
import sys
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


def as_cfg_options(overrides: Dict[str, Any]) -> List[str]:
    """Format overrides for the tools' ``--cfg-options``."""
    return [f'{key}={value}' for key, value in overrides.items()]


def run_tool(script: str, args: Sequence[str],
             timeout: int = 600) -> subprocess.CompletedProcess:
    """Run ``tools/<script>`` in a subprocess from the repository root."""
    env = dict(os.environ, PYTHONPATH=REPO_ROOT, OMP_NUM_THREADS='2')
    return subprocess.run(
        [sys.executable, osp.join(REPO_ROOT, 'tools', script), *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout)
