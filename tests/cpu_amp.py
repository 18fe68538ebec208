"""Test-only: mmengine's ``AmpOptimWrapper`` on a CPU, for the GPU-config dry
runs (tests/test_gpu_config_dry_runs.py loads it through ``custom_imports``).

``AmpOptimWrapper.__init__`` asserts that CUDA (or an NPU/MLU/MUSA) is
available. Nothing else in it needs one: ``mmengine.runner.amp.autocast``
runs ``torch.autocast('cpu', dtype=torch.bfloat16)`` on a CPU and
``torch.cuda.amp.GradScaler`` disables itself without CUDA (scale, step and
update pass through). Importing this module lifts exactly that assertion, by
giving the wrapper's module a ``is_cuda_available`` that answers True; only
when CUDA is really absent. With ``optim_wrapper.dtype='bfloat16'`` the real
``--amp`` / AMP-config code path then runs in bf16 on the CPU.

``RSSTestAmpProbeHook`` records what that path really did and writes it to
``<work_dir>/amp_probe.json``: the optim wrapper's class, autocast dtype and
whether its loss scaler is enabled; per training iteration, whether CPU
autocast was on inside the decode head's forward, the dtype of the logits
it returned and of its parameters, and the dtype and value of every
``loss*`` tensor the model returned.
"""
import json
import os.path as osp
from typing import Dict, List

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.optim.optimizer import amp_optimizer_wrapper
from mmseg.registry import HOOKS

if not torch.cuda.is_available():
    amp_optimizer_wrapper.is_cuda_available = lambda: True


@HOOKS.register_module()
class RSSTestAmpProbeHook(Hook):
    """Record the autocast state and the dtypes seen inside training."""
    priority = 'LOWEST'

    def __init__(self) -> None:
        self.iters: List[Dict] = []
        self.info: Dict = {}

    def before_train(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        wrapper = runner.optim_wrapper
        scaler = getattr(wrapper, 'loss_scaler', None)
        self.info = dict(
            optim_wrapper=type(wrapper).__name__,
            cast_dtype=str(getattr(wrapper, 'cast_dtype', None)),
            loss_scaler=type(scaler).__name__ if scaler else None,
            loss_scaler_enabled=bool(scaler.is_enabled()) if scaler else None)
        iters = self.iters

        def record_head(module, args, output):
            if module.training:
                logits = output[0] if isinstance(output,
                                                 (list, tuple)) else output
                iters.append(
                    dict(
                        autocast_cpu=torch.is_autocast_enabled('cpu'),
                        logits_dtype=str(logits.dtype),
                        param_dtype=str(next(module.parameters()).dtype)))

        # RSSHead.loss calls its own forward directly; the wrapped head is
        # called as a module, so its hook sees every training forward
        head = getattr(model.decode_head, 'head', model.decode_head)
        head.register_forward_hook(record_head)
        parse_losses = model.parse_losses

        def recording_parse_losses(losses):
            if iters:
                loss_items = {
                    k: v
                    for k, v in losses.items()
                    if 'loss' in k and isinstance(v, torch.Tensor)
                }
                iters[-1]['loss_dtypes'] = {
                    k: str(v.dtype)
                    for k, v in loss_items.items()
                }
                iters[-1]['losses'] = {
                    k: float(v.detach().float().sum())
                    for k, v in loss_items.items()
                }
            return parse_losses(losses)

        model.parse_losses = recording_parse_losses

    def after_train(self, runner) -> None:
        with open(osp.join(runner.work_dir, 'amp_probe.json'), 'w') as f:
            json.dump(dict(self.info, iters=self.iters), f, indent=1)
