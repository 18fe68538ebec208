"""tools/train.py 4 iterations, --resume to 8, then tools/test.py on it."""
import os.path as osp

import torch

from tests.conftest import (SYNTHETIC_CONFIG, as_cfg_options, run_tool,
                            tiny_run_overrides)


def _train(data_root, work_dir, iters, *extra):
    opts = as_cfg_options(tiny_run_overrides(data_root, work_dir, iters))
    result = run_tool('train.py',
                      [SYNTHETIC_CONFIG, *extra, '--cfg-options', *opts])
    assert result.returncode == 0, result.stderr[-4000:]
    return result


def test_train_resume_test(synthetic_root, tmp_path):
    work_dir = str(tmp_path / 'run')
    _train(synthetic_root, work_dir, 4)
    assert osp.isfile(osp.join(work_dir, 'iter_4.pth'))

    resumed = _train(synthetic_root, work_dir, 8, '--resume')
    log = resumed.stdout + resumed.stderr
    assert 'resumed epoch: 0, iter: 4' in log, log[-3000:]
    ckpt_path = osp.join(work_dir, 'iter_8.pth')
    # Loads under torch's default weights_only=True (allow-listed globals).
    import rss_mmseg  # noqa: F401
    ckpt = torch.load(ckpt_path, map_location='cpu')
    assert ckpt['meta']['iter'] == 8
    assert 'message_hub' in ckpt and 'optimizer' in ckpt

    result = run_tool('test.py', [
        SYNTHETIC_CONFIG, ckpt_path, '--work-dir',
        str(tmp_path / 'test'), '--cfg-options',
        *as_cfg_options(tiny_run_overrides(synthetic_root, work_dir, 8))
    ])
    assert result.returncode == 0, result.stderr[-4000:]
    assert 'mIoU' in result.stdout + result.stderr
