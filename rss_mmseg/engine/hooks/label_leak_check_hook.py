"""Refuse image-level RSS models in which pixel labels reach the gradient."""
from typing import List

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.registry import HOOKS
from torch import nn


def find_label_leaks(model: nn.Module) -> List[str]:
    """Parts of an image-level RSS model that would train on pixel labels.

    When the model has an image-level ``RSSHead`` (reward ``level ==
    'image'``), pixel labels may reach the gradient only through that
    scalar reward. Reported: any decode or auxiliary head not wrapped by an
    image-level ``RSSHead`` (e.g. an ``FCNHead`` auxiliary head with
    cross-entropy), a pixel-level ``RSSHead`` (pixel rewards are labels
    per pixel) and any loss module (``loss_name``) outside the image-level
    heads' RSS losses.

    Returns:
        list[str]: One line per offending module (``model.<name>`` with its
        type), empty when the model is label-free or not image-level.
    """
    modules = dict(model.named_modules())
    image_heads = [
        name for name, m in modules.items()
        if getattr(m, 'level', None) == 'image' and hasattr(m, 'reward')
    ]
    if not image_heads:
        return []

    def inside_image_head(name: str) -> bool:
        return any(name.startswith(h + '.') for h in image_heads)

    leaks, reported = [], []
    for name, module in modules.items():
        if not name or name in image_heads or inside_image_head(name):
            continue
        if any(name.startswith(leak + '.') for leak in reported):
            continue
        kind = type(module).__name__
        if getattr(module, 'level', None) == 'pixel' and hasattr(
                module, 'reward'):
            leaks.append(f'model.{name} ({kind} with the pixel-level '
                         f'{type(module.reward).__name__})')
        elif isinstance(module, BaseDecodeHead):
            loss = getattr(module, 'loss_decode', None)
            losses = '' if loss is None else ' with ' + ', '.join(
                type(m).__name__ for m in (
                    loss if isinstance(loss, nn.ModuleList) else [loss]))
            leaks.append(f'model.{name} ({kind}{losses})')
        elif hasattr(module, 'loss_name'):
            leaks.append(f'model.{name} ({kind})')
        else:
            continue
        reported.append(name)
    return leaks


@HOOKS.register_module()
class LabelLeakCheckHook(Hook):
    """Stop before training if an image-level RSS model can see labels.

    Image-level RSS promises that pixel labels reach the gradient only
    through one scalar reward per image; an auxiliary cross-entropy head
    (mmseg's configs often have one) would break that silently. Runs
    before training, on the built model.
    """
    priority = 'VERY_HIGH'

    def before_train(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        leaks = find_label_leaks(model)
        if leaks:
            raise ValueError(
                'image-level RSS: pixel labels would reach the gradient '
                'through ' + '; '.join(leaks) + '. Fix: delete it (e.g. '
                'auxiliary_head=None in the config) or wrap it in an '
                'RSSHead with the same image-level reward')
