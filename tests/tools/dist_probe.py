"""Test-only hook for tests/tools/test_dist_train.py (custom_imports).

In every training iteration of each rank it records the SyncAN statistics
the loss used (by wrapping ``global_sums`` where PixelRewardLoss and PSDLoss
look it up),
the rank's raw batch with ``global_moments`` over it, a checksum of the
parameters and one of the rank's RNG states (torch, numpy, python), and
writes them to ``work_dir/probe_rank{r}_iter{i}.pth``.
"""
import hashlib
import os.path as osp
import random
from typing import List

import numpy as np
import torch
from mmengine.dist import get_rank, get_world_size
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmseg.registry import HOOKS

from rss_mmseg.models import advantage
from rss_mmseg.models.losses import pixel_reward_loss, psd_loss


@HOOKS.register_module()
class RSSTestDistProbeHook(Hook):
    """Dump per-rank SyncAN statistics and a parameter checksum."""
    priority = 'LOWEST'

    def __init__(self) -> None:
        self.calls: List[dict] = []

    def before_train(self, runner) -> None:
        for module in (pixel_reward_loss, psd_loss):
            self._wrap(module)

    def _wrap(self, module) -> None:
        original = module.global_sums
        calls = self.calls

        def recording(tensors, valid=None, repeats=1):
            out = original(tensors, valid, repeats)
            calls.append(
                dict(
                    tensors=[t.detach().cpu().clone() for t in tensors],
                    valid=None if valid is None else valid.cpu().clone(),
                    repeats=repeats,
                    out=out.cpu().clone()))
            return out

        module.global_sums = recording

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs=None) -> None:
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        flat = torch.cat(
            [p.detach().flatten().double().cpu() for p in model.parameters()])
        images = torch.stack(data_batch['inputs'])
        mean, std, count = advantage.global_moments(images.double())
        rank = get_rank()
        rng = hashlib.sha256(torch.get_rng_state().numpy().tobytes())
        rng.update(np.random.get_state()[1].tobytes())
        rng.update(repr(random.getstate()).encode())
        torch.save(
            dict(
                rank=rank,
                world_size=get_world_size(),
                param_sha=hashlib.sha256(flat.numpy().tobytes()).hexdigest(),
                param_sum=float(flat.sum()),
                rng_sha=rng.hexdigest(),
                images=images.cpu(),
                moments=torch.stack([mean, std, count]).cpu(),
                syncan_calls=list(self.calls)),
            osp.join(runner.work_dir,
                     f'probe_rank{rank}_iter{runner.iter + 1}.pth'))
        self.calls.clear()


def write_probe_config(config: str, path: str) -> str:
    """Write ``config`` plus this hook (imported through custom_imports by
    every rank) to ``path``; return ``path``."""
    from mmengine.config import Config
    cfg = Config.fromfile(config)
    cfg.custom_imports = dict(
        imports=['rss_mmseg', 'tests.tools.dist_probe'],
        allow_failed_imports=False)
    cfg.custom_hooks = list(cfg.custom_hooks) + [
        dict(type='RSSTestDistProbeHook')
    ]
    cfg.dump(path)
    return path
