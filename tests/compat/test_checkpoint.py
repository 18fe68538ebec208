"""mmengine checkpoints load under torch>=2.6's weights_only=True, safely."""
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.logging import MessageHub

import rss_mmseg  # noqa: F401  registers the allow-list


def _mmengine_style_checkpoint(path):
    """What mmengine 0.10.7's Runner.save_checkpoint writes, in small."""
    hub = MessageHub.get_instance('rss-test-ckpt')
    for i in range(3):
        hub.update_scalar('train/loss', float(i))
        hub.update_scalar('train/lr', np.float64(0.01))
    hub.update_info('iter', 3)
    torch.save(
        dict(
            meta=dict(iter=3, epoch=0, seed=np.int64(0),
                      hist=np.arange(4, dtype=np.float32)),
            state_dict={'w': torch.ones(2)},
            message_hub=hub.state_dict()), path)


def test_plain_torch_load_fails_without_plugin(tmp_path):
    """The upstream problem exists (so the next test means something)."""
    path = str(tmp_path / 'ckpt.pth')
    _mmengine_style_checkpoint(path)
    code = 'import torch, sys; torch.load(sys.argv[1])'
    result = subprocess.run([sys.executable, '-c', code, path],
                            capture_output=True, text=True)
    assert result.returncode != 0
    assert 'HistoryBuffer' in result.stderr or 'numpy' in result.stderr


def test_checkpoint_loads_with_weights_only(tmp_path):
    path = str(tmp_path / 'ckpt.pth')
    _mmengine_style_checkpoint(path)
    ckpt = torch.load(path, map_location='cpu', weights_only=True)
    assert ckpt['meta']['iter'] == 3
    hub = ckpt['message_hub']
    assert hub['log_scalars']['train/loss'].current() == 2.0


class _Exploit:

    def __reduce__(self):
        return (os.system, ('echo pwned',))


def test_arbitrary_callables_still_refused(tmp_path):
    path = str(tmp_path / 'evil.pth')
    torch.save({'x': _Exploit()}, path)
    with pytest.raises(pickle.UnpicklingError, match='system|posix'):
        torch.load(path, weights_only=True)


def test_mmengine_load_checkpoint_path(tmp_path):
    """load_from / tools/test.py go through mmengine's CheckpointLoader."""
    from mmengine.runner import load_checkpoint
    path = str(tmp_path / 'ckpt.pth')
    _mmengine_style_checkpoint(path)
    model = torch.nn.Module()
    model.register_buffer('w', torch.zeros(2))
    ckpt = load_checkpoint(model, path, map_location='cpu')
    assert torch.equal(model.w, torch.ones(2))
    assert ckpt['meta']['iter'] == 3



class _GetattrExploit:
    """getattr(HistoryBuffer, '__init__'): the first step of an escape."""

    def __reduce__(self):
        from mmengine.logging import HistoryBuffer
        return (getattr, (HistoryBuffer, '__init__'))


def test_getattr_is_restricted_to_history_buffer_methods(tmp_path):
    path = str(tmp_path / 'evil.pth')
    torch.save({'x': _GetattrExploit()}, path)
    with pytest.raises(pickle.UnpicklingError, match='__init__'):
        torch.load(path, weights_only=True)
