"""Crash-safe checkpoints: atomic writes, and --resume past a truncated file.

A write that fails halfway (the disk fills up; the same state as a run
killed while saving) must leave the previous file at that path intact;
``tools/train.py --resume`` on a truncated latest checkpoint must fall back
to the newest one that loads, naming the broken file, or stop with an
error that names the files and the fix.
"""
import builtins
import errno
import os
import os.path as osp
import shutil
from types import SimpleNamespace

import pytest
import torch
from mmengine.fileio import LocalBackend, get_file_backend
from mmengine.hooks import CheckpointHook
from mmengine.logging import MessageHub
from mmengine.runner.checkpoint import save_checkpoint

from rss_mmseg.compat import AtomicLocalBackend
from rss_mmseg.compat.crash_safe_checkpoint import fallback_checkpoints
from tests.conftest import (REPO_ROOT, as_cfg_options, run_tool,
                            tiny_run_overrides)

CONFIG = osp.join(REPO_ROOT, 'configs/rss',
                  'rss-pixel_fast-scnn_1xb8-1k_synthetic-128x128.py')


class _HalfWriter:
    """A file whose first ``write`` puts half of the data on disk, then
    fails as a full disk does."""

    def __init__(self, file, log):
        self._file, self._log = file, log

    def write(self, data):
        self._file.write(data[:len(data) // 2])
        self._file.flush()
        self._log.append(len(data) // 2)
        raise OSError(errno.ENOSPC, 'No space left on device (injected)')

    def __getattr__(self, name):
        return getattr(self._file, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._file.close()


def _disk_fills_up(monkeypatch, folder):
    """Every file opened for writing under ``folder`` (by whatever code,
    through the builtin ``open``) fails halfway through its first write;
    returns the list of bytes that reached the disk before each failure."""
    real_open, written = builtins.open, []

    def faulty_open(file, mode='r', *args, **kwargs):
        handle = real_open(file, mode, *args, **kwargs)
        if (isinstance(file, str) and file.startswith(str(folder))
                and any(m in mode for m in 'wxa')):
            return _HalfWriter(handle, written)
        return handle

    monkeypatch.setattr(builtins, 'open', faulty_open)
    return written


def _checkpoint(value: float) -> dict:
    return dict(meta=dict(iter=1),
                state_dict={'w': torch.full((4096, ), value)})


def test_injected_fault_truncates_with_upstream_backend(tmp_path, monkeypatch):
    """The problem exists (so the next tests mean something): mmengine's
    LocalBackend, failing halfway, leaves a truncated file in place."""
    path = str(tmp_path / 'iter_1.pth')
    LocalBackend().put(b'x' * 1000, path)
    written = _disk_fills_up(monkeypatch, tmp_path)
    with pytest.raises(OSError, match='injected'):
        LocalBackend().put(b'y' * 1000, path)
    monkeypatch.undo()
    assert written == [500]
    with open(path, 'rb') as f:
        assert f.read() == b'y' * 500


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    path = str(tmp_path / 'iter_1.pth')
    assert isinstance(get_file_backend(path), AtomicLocalBackend)
    save_checkpoint(_checkpoint(1.0), path)  # mmengine's own function
    with open(path, 'rb') as f:
        before = f.read()

    written = _disk_fills_up(monkeypatch, tmp_path)
    with pytest.raises(OSError, match='injected'):
        save_checkpoint(_checkpoint(2.0), path)
    monkeypatch.undo()
    assert written and written[0] > 0  # the failure came halfway
    with open(path, 'rb') as f:
        assert f.read() == before
    assert os.listdir(tmp_path) == ['iter_1.pth']  # no partial file left
    loaded = torch.load(path, map_location='cpu', weights_only=True)
    assert torch.equal(loaded['state_dict']['w'], torch.full((4096, ), 1.0))

    save_checkpoint(_checkpoint(2.0), path)  # a write that succeeds
    loaded = torch.load(path, map_location='cpu', weights_only=True)
    assert torch.equal(loaded['state_dict']['w'], torch.full((4096, ), 2.0))
    assert os.listdir(tmp_path) == ['iter_1.pth']


def test_put_text_is_atomic(tmp_path, monkeypatch):
    path = str(tmp_path / 'scalars.json')
    backend = get_file_backend(path)
    backend.put_text('{"old": 1}', path)
    _disk_fills_up(monkeypatch, tmp_path)
    with pytest.raises(OSError, match='injected'):
        backend.put_text('{"new": 2}', path)
    monkeypatch.undo()
    with open(path) as f:
        assert f.read() == '{"old": 1}'
    assert os.listdir(tmp_path) == ['scalars.json']


def test_last_checkpoint_pointer_write_is_atomic(tmp_path, monkeypatch):
    """CheckpointHook's own code writes the pointer (mmengine's open())."""
    work_dir = str(tmp_path)
    runner = SimpleNamespace(
        work_dir=work_dir,
        message_hub=MessageHub.get_instance('rss-crash-safe-pointer'),
        save_checkpoint=lambda *args, **kwargs: None)
    hook = CheckpointHook(interval=1, by_epoch=False)
    hook.out_dir, hook.file_backend = work_dir, get_file_backend(work_dir)
    pointer = osp.join(work_dir, 'last_checkpoint')

    hook._save_checkpoint_with_step(runner, 1, meta={})
    with open(pointer) as f:
        assert f.read() == osp.join(work_dir, 'iter_1.pth')

    written = _disk_fills_up(monkeypatch, tmp_path)
    with pytest.raises(OSError, match='injected'):
        hook._save_checkpoint_with_step(runner, 22, meta={})
    monkeypatch.undo()
    assert written and written[0] > 0
    with open(pointer) as f:
        assert f.read() == osp.join(work_dir, 'iter_1.pth')
    assert os.listdir(tmp_path) == ['last_checkpoint']

    hook._save_checkpoint_with_step(runner, 22, meta={})
    with open(pointer) as f:
        assert f.read() == osp.join(work_dir, 'iter_22.pth')


def test_fallback_order_newest_older_first(tmp_path):
    for name in ('iter_2.pth', 'iter_10.pth', 'iter_9.pth', 'epoch_3.pth',
                 'iter_11.pth', 'best_mIoU_iter_8.pth', '.iter_7.pth.1.tmp'):
        (tmp_path / name).write_bytes(b'')
    found = fallback_checkpoints(str(tmp_path), str(tmp_path / 'iter_10.pth'))
    assert [osp.basename(p) for p in found] == ['iter_9.pth', 'iter_2.pth']


# -- real trainings ---------------------------------------------------------
def _train(data_root, work_dir, max_iters, resume=False):
    overrides = tiny_run_overrides(data_root, work_dir, max_iters)
    overrides.update({
        'default_hooks.checkpoint.interval': 1,
        'default_hooks.checkpoint.max_keep_ckpts': 100,
    })
    args = [CONFIG, '--cfg-options', *as_cfg_options(overrides)]
    return run_tool('train.py', args + (['--resume'] if resume else []))


@pytest.fixture(scope='module')
def trained(synthetic_root, tmp_path_factory):
    """A 2-iteration run with checkpoints at iterations 1 and 2."""
    work_dir = str(tmp_path_factory.mktemp('crash_safe') / 'run')
    result = _train(synthetic_root, work_dir, 2)
    assert result.returncode == 0, result.stderr[-3000:]
    return work_dir


def _copy_run(trained, tmp_path):
    """The trained run in a folder of its own (its pointer moved along)."""
    work_dir = str(tmp_path / 'run')
    shutil.copytree(trained, work_dir)
    with open(osp.join(trained, 'last_checkpoint')) as f:
        assert f.read() == osp.join(trained, 'iter_2.pth')
    with open(osp.join(work_dir, 'last_checkpoint'), 'w') as f:
        f.write(osp.join(work_dir, 'iter_2.pth'))
    return work_dir


def _truncate_to_half(path):
    os.truncate(path, os.path.getsize(path) // 2)


def test_resume_falls_back_past_truncated_checkpoint(synthetic_root, trained,
                                                     tmp_path):
    work_dir = _copy_run(trained, tmp_path)
    broken = osp.join(work_dir, 'iter_2.pth')
    _truncate_to_half(broken)
    # the temporary file a writer killed mid-save leaves behind
    leftover = osp.join(work_dir, '.iter_3.pth.999999999.0123abcd.tmp')
    with open(leftover, 'wb') as f:
        f.write(b'partial')

    result = _train(synthetic_root, work_dir, 3, resume=True)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    warning = [
        line for line in output.splitlines()
        if 'WARNING' in line and '--resume: cannot resume' in line
    ]
    assert len(warning) == 1, output[-4000:]
    good = osp.join(work_dir, 'iter_1.pth')
    assert f'cannot resume from {broken}: RuntimeError' in warning[0]
    assert f'Resumed from {good} instead' in warning[0]
    assert 'truncated or corrupt' in warning[0]
    assert 'resumed epoch: 0, iter: 1' in output
    assert 'Iter(train) [3/3]' in output
    assert not osp.exists(leftover)
    # iterations 2 and 3 trained again; iter_2.pth rewritten whole
    for step in (2, 3):
        ckpt = torch.load(osp.join(work_dir, f'iter_{step}.pth'),
                          map_location='cpu',
                          weights_only=True)
        assert ckpt['meta']['iter'] == step
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        assert f.read() == osp.join(work_dir, 'iter_3.pth')


def test_resume_without_loadable_checkpoint_names_files_and_fix(
        synthetic_root, trained, tmp_path):
    work_dir = _copy_run(trained, tmp_path)
    for step in (1, 2):
        _truncate_to_half(osp.join(work_dir, f'iter_{step}.pth'))

    result = _train(synthetic_root, work_dir, 3, resume=True)
    assert result.returncode != 0
    err = result.stderr
    assert 'ResumeError: --resume:' in err, err[-4000:]
    message = err[err.index('ResumeError: --resume:'):]
    for step in (2, 1):
        assert f'{osp.join(work_dir, f"iter_{step}.pth")}: RuntimeError' \
            in message
    assert 'truncated or corrupt' in message
    assert 'Fix: delete the broken file(s)' in message
    assert 'load_from=' in message
    assert 'Errno 22' not in err
    assert not osp.exists(osp.join(work_dir, 'iter_3.pth'))
