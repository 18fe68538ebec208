"""Refuse to run when a head's ``num_classes`` disagrees with the dataset."""
from typing import Optional

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.registry import HOOKS


@HOOKS.register_module()
class NumClassesCheckHook(Hook):
    """Check every decode/auxiliary head against the dataset's classes.

    A wrong ``num_classes`` otherwise trains silently (too many outputs) or
    fails inside the loss with an index error that names neither the config
    key nor the dataset. Runs before training, validation and testing.
    """
    priority = 'VERY_HIGH'

    def _check(self, runner, mode: str) -> None:
        loop = getattr(runner, f'{mode}_loop')
        dataset = loop.dataloader.dataset
        classes: Optional[tuple] = dataset.metainfo.get('classes')
        if classes is None:
            return
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        for name, module in model.named_modules():
            if not isinstance(module, BaseDecodeHead):
                continue
            if module.num_classes != len(classes):
                raise ValueError(
                    f'model.{name}.num_classes = {module.num_classes}, but '
                    f'the {mode} dataset {type(dataset).__name__} '
                    f'(data_root={getattr(dataset, "data_root", None)!r}) has '
                    f'{len(classes)} classes {tuple(classes)}. Fix: set '
                    f'model.{name}.num_classes={len(classes)} in the config '
                    '(or --cfg-options), or use the dataset the model was '
                    'configured for.')

    def before_train(self, runner) -> None:
        self._check(runner, 'train')

    def before_val(self, runner) -> None:
        self._check(runner, 'val')

    def before_test(self, runner) -> None:
        self._check(runner, 'test')
