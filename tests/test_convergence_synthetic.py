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
So the test runs seeds 0, 1 and 2, CE and RSS side by side for each (two
``tools/train.py`` processes of one thread each), and asserts on the median
of the per-seed ratios.
"""
import os.path as osp
import statistics

import pytest

from tests.conftest import (REPO_ROOT, SYNTHETIC_CONFIG, tiny_run_overrides,
                            train_side_by_side)

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


def synthetic_run(config: str, data_root: str, work_dir: str, seed: int,
                  iters: int = ITERS) -> dict:
    """A ``train_side_by_side`` run of a synthetic config: the full-size
    set, batch 8, ``iters`` iterations with the poly decay over them."""
    options = tiny_run_overrides(data_root, work_dir, iters, batch_size=8)
    options.update({
        'model.data_preprocessor.size': (SIZE, SIZE),
        'param_scheduler.0.end': iters,
        'default_hooks.logger.interval': 50,
        'randomness.seed': seed,
    })
    return dict(config=config, work_dir=work_dir, options=options)


def test_pixel_rss_reaches_fraction_of_ce(convergence_root, tmp_path):
    runs = []
    for seed in SEEDS:  # CE and RSS of a seed side by side
        runs.append(synthetic_run(SYNTHETIC_CONFIG, convergence_root,
                                  str(tmp_path / f'ce{seed}'), seed))
        runs.append(synthetic_run(RSS_CONFIG, convergence_root,
                                  str(tmp_path / f'rss{seed}'), seed))
    mious = train_side_by_side(runs)
    ces, rsss = mious[0::2], mious[1::2]
    ratios = [rss / ce for ce, rss in zip(ces, rsss)]
    for seed, ce, rss in zip(SEEDS, ces, rsss):
        print(f'synthetic {ITERS} iters, seed {seed}: CE mIoU {ce:.2f}, '
              f'pixel-RSS {rss:.2f} ({rss / ce:.3f}x)')
    assert statistics.median(ces) > CE_FLOOR, \
        f'CE learned too little ({ces}) to compare'
    assert statistics.median(ratios) >= RSS_FRACTION, (ces, ratios)


IMAGE_CONFIG = osp.join(
    REPO_ROOT, 'configs/rss/rss-image_fast-scnn_1xb8-1k_synthetic-128x128.py')
REINFORCE_CONFIG = osp.join(
    REPO_ROOT, 'configs/rss/ablations/'
    'rss-image-reinforce_fast-scnn_1xb8-1k_synthetic-128x128.py')
# plain REINFORCE's all-background answer scores 12.91 on the val split
ALL_BACKGROUND_MAX = 14.0
IMAGE_ITERS = 2000
IMAGE_MARGIN = 3.0  # mIoU points over plain REINFORCE, median of SEEDS


def test_image_rss_beats_plain_reinforce(convergence_root, tmp_path):
    """One scalar per image: PSR with group advantages learns object
    classes where plain REINFORCE (one full-resolution sample, batch
    baseline) stays at the all-background answer.

    Image-level RSS runs on seeds 0, 1 and 2 and its median must clear
    REINFORCE by ``IMAGE_MARGIN``, with every seed above REINFORCE: one
    seed's margin (5.00 on seed 0 when this test had one seed) says little
    on a machine whose rounding differs. REINFORCE runs on seed 0 only: it
    ends at the all-background answer on every seed (12.91 on seeds 0, 1
    and 2, docs/method.md section 12, session 11), which the test checks.
    """
    runs = [
        synthetic_run(IMAGE_CONFIG, convergence_root,
                      str(tmp_path / f'rss{seed}'), seed, IMAGE_ITERS)
        for seed in SEEDS
    ]
    runs.append(
        synthetic_run(REINFORCE_CONFIG, convergence_root,
                      str(tmp_path / 'reinforce'), 0, IMAGE_ITERS))
    *rsss, reinforce = train_side_by_side(runs)
    for seed, rss in zip(SEEDS, rsss):
        print(f'synthetic {IMAGE_ITERS} iters, seed {seed}: image-level RSS '
              f'mIoU {rss:.2f}, plain REINFORCE (seed 0) {reinforce:.2f}')
    assert reinforce <= ALL_BACKGROUND_MAX, \
        f'plain REINFORCE learned objects ({reinforce:.2f} mIoU)'
    assert min(rsss) > reinforce, (rsss, reinforce)
    assert statistics.median(rsss) >= reinforce + IMAGE_MARGIN, \
        (rsss, reinforce)
