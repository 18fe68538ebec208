"""Short convergence check on the synthetic set: pixel-RSS keeps up with CE.

CE and pixel-level RSS train the same Fast-SCNN from the same seed on the
same data for the same schedule: the demo configs as they are (1000
iterations on a freshly generated copy of the default synthetic set, about
2 minutes each on 2 cores); RSS must reach a stated fraction of CE's val
mIoU, and CE must clearly beat the all-background answer (~14 mIoU), so
that the comparison means something. Shorter schedules do not separate the
methods on this set: after 300 iterations both predict background only (CE
13.3, also with a small U-Net), after 500 CE has 20.8 and RSS 17.6, still
catching up (measured while writing this test). At 1000 iterations:
CE 28.05, RSS 27.05 (0.964x), 5.7 minutes for both on the 2-core machine.

One seed is not enough: the same seed 0 with a different random stream (the
RandomStateHook isolates validation from the training RNG; dropout draws
change) gave CE 30.92 and RSS 27.39 (0.886x). CE alone moved by ~3 points.
So the test runs seeds 0, 1 and 2, CE and RSS side by side for each, and
asserts on the median of the per-seed ratios.
"""
import statistics
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.runner import Runner

from tests.conftest import REPO_ROOT, SYNTHETIC_CONFIG, tiny_run_overrides

RSS_CONFIG = osp.join(
    REPO_ROOT, 'configs/rss/rss-pixel_fast-scnn_1xb8-1k_synthetic-128x128.py')
ITERS = 1000
SIZE = 128
RSS_FRACTION = 0.90  # RSS val mIoU >= 0.90 x CE val mIoU
CE_FLOOR = 19.0  # all-background scores ~14 (background IoU / 6)


@pytest.fixture(scope='module')
def convergence_root(tmp_path_factory) -> str:
    from rss_mmseg.datasets.synthetic import generate_synthetic_dataset
    return generate_synthetic_dataset(
        str(tmp_path_factory.mktemp('synthetic_conv')),
        num_train=2000, num_val=100, size=SIZE, seed=0)


SEEDS = (0, 1, 2)


def _val_miou(cfg_path: str, data_root: str, work_dir: str,
              seed: int) -> float:
    cfg = Config.fromfile(cfg_path)
    cfg.randomness = dict(seed=seed)
    cfg.merge_from_dict(
        tiny_run_overrides(data_root, work_dir, ITERS, batch_size=8))
    cfg.model.data_preprocessor.size = (SIZE, SIZE)
    cfg.param_scheduler[0].end = ITERS
    cfg.default_hooks.logger.interval = 50
    runner = Runner.from_cfg(cfg)
    runner.train()
    return runner.message_hub.get_scalar('val/mIoU').current()


def test_pixel_rss_reaches_fraction_of_ce(convergence_root, tmp_path):
    ratios, ces = [], []
    for seed in SEEDS:
        ce = _val_miou(SYNTHETIC_CONFIG, convergence_root,
                       str(tmp_path / f'ce{seed}'), seed)
        rss = _val_miou(RSS_CONFIG, convergence_root,
                        str(tmp_path / f'rss{seed}'), seed)
        print(f'synthetic {ITERS} iters, seed {seed}: CE mIoU {ce:.2f}, '
              f'pixel-RSS {rss:.2f} ({rss / ce:.3f}x)')
        ces.append(ce)
        ratios.append(rss / ce)
    assert statistics.median(ces) > CE_FLOOR, \
        f'CE learned too little ({ces}) to compare'
    assert statistics.median(ratios) >= RSS_FRACTION, (ces, ratios)
