"""Visual tools with RSS models: ``tools/test.py --show-dir`` overlays and
the TensorBoard backend switched on by the one config line of the README.

Both train the pixel-level RSS synthetic config for 2 iterations on a tiny
set written by ``tools/dataset_converters/synthetic.py`` (8 train / 2 val
images of 64x64).
"""
import glob
import math
import os
import os.path as osp

import numpy as np
import pytest
from PIL import Image

from tests.conftest import (REPO_ROOT, as_cfg_options, run_tool,
                            tiny_run_overrides)

RSS_CONFIG = osp.join(
    REPO_ROOT, 'configs/rss/rss-pixel_fast-scnn_1xb8-1k_synthetic-128x128.py')
SIZE = 64
ITERS = 2
# The line README.md ("Logging and visualization") tells users to add.
TENSORBOARD_LINE = (
    "visualizer = dict(vis_backends=[dict(type='LocalVisBackend'), "
    "dict(type='TensorboardVisBackend')])")


@pytest.fixture(scope='module')
def tiny_root(tmp_path_factory) -> str:
    root = str(tmp_path_factory.mktemp('synthetic_vis'))
    result = run_tool('dataset_converters/synthetic.py', [
        '-o', root, '--num-train', '8', '--num-val', '2', '--size',
        str(SIZE)
    ])
    assert result.returncode == 0, result.stderr[-3000:]
    return root


def train_tiny(config: str, data_root: str, work_dir: str) -> str:
    """``tools/train.py`` for ``ITERS`` iterations (validation at the end);
    returns the last checkpoint."""
    opts = as_cfg_options(tiny_run_overrides(data_root, work_dir, ITERS))
    result = run_tool('train.py', [config, '--cfg-options', *opts])
    assert result.returncode == 0, result.stderr[-4000:]
    ckpt = osp.join(work_dir, f'iter_{ITERS}.pth')
    assert osp.isfile(ckpt)
    return ckpt


def test_show_dir_writes_overlays(tiny_root, tmp_path):
    work_dir = str(tmp_path / 'train')
    ckpt = train_tiny(RSS_CONFIG, tiny_root, work_dir)
    show_dir = str(tmp_path / 'show')
    options = tiny_run_overrides(tiny_root, work_dir, ITERS)
    # mmseg's SegVisualizationHook draws every 50th image by default.
    options['default_hooks.visualization.interval'] = 1
    result = run_tool('test.py', [
        RSS_CONFIG, ckpt, '--work-dir',
        str(tmp_path / 'test'), '--show-dir', show_dir, '--cfg-options',
        *as_cfg_options(options)
    ])
    assert result.returncode == 0, result.stderr[-4000:]

    val_dir = osp.join(tiny_root, 'img_dir', 'val')
    val_names = sorted(os.listdir(val_dir))
    assert len(val_names) == 2
    overlays = sorted(
        glob.glob(osp.join(show_dir, '**', '*.png'), recursive=True))
    assert len(overlays) == len(val_names), overlays
    for name in val_names:
        # SegVisualizationHook names them test_<image file>_<step>.png
        found = [p for p in overlays
                 if osp.basename(p).startswith(f'test_{name}_')]
        assert len(found) == 1, (name, overlays)
        with Image.open(found[0]) as img:
            img.verify()
        with Image.open(found[0]) as img:
            # reference | prediction, side by side
            assert img.size == (2 * SIZE, SIZE), img.size
            assert img.mode == 'RGB'
            drawn = np.asarray(img).astype(np.int16)
        with Image.open(osp.join(val_dir, name)) as src:
            image = np.asarray(src.convert('RGB')).astype(np.int16)
        # the prediction half is the image with the class colours over it
        assert np.abs(drawn[:, SIZE:] - image).mean() > 5.0


def test_tensorboard_event_file_has_training_scalars(tiny_root, tmp_path):
    with open(osp.join(REPO_ROOT, 'README.md')) as f:
        assert TENSORBOARD_LINE in f.read(), 'README lost the config line'
    config = tmp_path / 'rss_tensorboard.py'
    config.write_text(f'_base_ = {RSS_CONFIG!r}\n{TENSORBOARD_LINE}\n')
    work_dir = str(tmp_path / 'train')
    train_tiny(str(config), tiny_root, work_dir)

    events = glob.glob(
        osp.join(work_dir, '*', 'vis_data', 'events.out.tfevents.*'))
    assert len(events) == 1, events
    from tensorboard.backend.event_processing.event_accumulator import \
        EventAccumulator
    acc = EventAccumulator(events[0])
    acc.Reload()
    tags = acc.Tags()['scalars']
    for tag in ('loss', 'decode.reward', 'lr', 'mIoU'):
        assert tag in tags, (tag, tags)
    for tag in ('loss', 'decode.reward'):
        points = acc.Scalars(tag)
        assert [p.step for p in points] == list(range(1, ITERS + 1)), points
        assert all(math.isfinite(p.value) for p in points), points
    assert 0.0 <= acc.Scalars('decode.reward')[-1].value <= 1.0
