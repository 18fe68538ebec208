"""Refuse to fine-tune from nothing: a fine-tuning config needs a checkpoint."""
from mmengine.hooks import Hook
from mmseg.registry import HOOKS


@HOOKS.register_module()
class RequireCheckpointHook(Hook):
    """Stop before training when neither ``load_from`` nor ``--resume``
    gives the run a starting model.

    Fine-tuning schedules are short and start at a small learning rate; run
    from random weights they would train silently for the whole schedule
    and report a meaningless model.

    Args:
        hint (str): What to load, named in the error (e.g. the command that
            trains the starting checkpoint). Defaults to ''.
    """
    priority = 'VERY_HIGH'

    def __init__(self, hint: str = '') -> None:
        self.hint = hint

    def before_train(self, runner) -> None:
        if runner._load_from is None and not runner._resume:
            raise ValueError(
                f'{runner.cfg.filename or "this config"} fine-tunes a '
                'trained model, but no checkpoint is given. Fix: add '
                '--cfg-options load_from=PATH/TO/CHECKPOINT.pth (or '
                '--resume to continue a fine-tuning run)'
                + (f'; {self.hint}' if self.hint else ''))
