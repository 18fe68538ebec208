"""Turn any mmseg config into its RSS version, at pixel or image level.

The recipes are the ones measured on CamVid (``docs/method.md``): pixel
level, ``PixelMatchReward`` + importance-weighted ``PixelRewardLoss`` (CE's
gradient in expectation); image level, the mIoU over the reference's
classes with PSR grids and group-normalized all-pairs PSD. Used by
``tools/misc/rss_config.py`` and by the model-zoo test, so every family
mmseg ships is converted the same way.
"""
import copy
from typing import Any, Dict, List, Optional, Sequence

from .config_imports import rss_custom_imports

LEVELS = ('pixel', 'image')

PIXEL_REWARD = dict(type='PixelMatchReward', correct=1.0, wrong=0.0)
PIXEL_LOSS = dict(type='PixelRewardLoss', baseline='mean', iw_power=1.0)
IMAGE_REWARD = dict(type='ImageMIoUReward', classes='reference')
IMAGE_LOSS = dict(
    type='PSDLoss',
    pairs='all',
    region_norm='mean',
    normalize='group',
    entropy_weight=0.01,
    uniform_weight=0.003)
IMAGE_SAMPLES = 32
# PSR grids over equal parts of training (the CamVid schedule, extended by
# one finer grid for the 512-1024 pixel crops of the GPU-scale datasets)
IMAGE_SCALES = (8, 16, 32, 64)


def _check_level(level: str) -> None:
    if level not in LEVELS:
        raise ValueError(f'level must be one of {LEVELS}, got {level!r}')


def stock_loss_weight(head: Dict[str, Any]) -> float:
    """The weight of a stock head's (first) decode loss; 1.0 if unset."""
    loss = head.get('loss_decode') or {}
    if isinstance(loss, (list, tuple)):
        loss = loss[0] if loss else {}
    return float(loss.get('loss_weight', 1.0))


def wrap_head(head: Dict[str, Any],
              level: str,
              loss_weight: float = 1.0,
              scales: Sequence[int] = IMAGE_SCALES) -> Dict[str, Any]:
    """An ``RSSHead`` config around one stock decode-head config."""
    _check_level(level)
    pixel = level == 'pixel'
    loss = copy.deepcopy(PIXEL_LOSS if pixel else IMAGE_LOSS)
    if loss_weight != 1.0:
        loss['loss_weight'] = loss_weight
    wrapped = dict(
        type='RSSHead',
        head=copy.deepcopy(head),
        reward=copy.deepcopy(PIXEL_REWARD if pixel else IMAGE_REWARD),
        loss=loss,
        num_samples=1 if pixel else IMAGE_SAMPLES)
    if 'num_classes' in head:  # so model.decode_head.num_classes=N works
        wrapped['num_classes'] = head['num_classes']
    if not pixel:
        wrapped['scales'] = scales[0]
    return wrapped


def rss_model(model: Dict[str, Any],
              level: str,
              scales: Sequence[int] = IMAGE_SCALES) -> Dict[str, Any]:
    """The model config with every head trained from rewards.

    Decode heads (each stage of a cascade) are wrapped in ``RSSHead``.
    Auxiliary heads are wrapped too at pixel level, keeping the stock loss
    weight (same network and compute as the stock model); at image level
    they are removed: a label-trained auxiliary head would put pixel labels
    into the gradient.
    """
    _check_level(level)
    model = copy.deepcopy(model)
    decode = model['decode_head']
    if isinstance(decode, (list, tuple)):
        model['decode_head'] = [
            wrap_head(head, level, scales=scales) for head in decode
        ]
    else:
        model['decode_head'] = wrap_head(decode, level, scales=scales)
    if 'auxiliary_head' not in model:  # e.g. SAN's segmentor has none
        return model
    aux = model['auxiliary_head']
    if aux and level == 'pixel':
        heads = aux if isinstance(aux, (list, tuple)) else [aux]
        wrapped = [
            wrap_head(head, level, loss_weight=stock_loss_weight(head))
            for head in heads
        ]
        model['auxiliary_head'] = wrapped if isinstance(
            aux, (list, tuple)) else wrapped[0]
    else:
        model['auxiliary_head'] = None
    return model


def rss_hooks(hooks: Optional[List[Dict[str, Any]]],
              level: str,
              scales: Sequence[int] = IMAGE_SCALES) -> List[Dict[str, Any]]:
    """The config's custom hooks plus RSS's guards (and PSR at image
    level), each added once."""
    _check_level(level)
    hooks = copy.deepcopy(list(hooks or []))
    wanted = [
        dict(type='NumClassesCheckHook'),
        dict(type='RandomStateHook'),
    ]
    if level == 'image':
        wanted += [
            dict(type='LabelLeakCheckHook'),
            dict(type='ProgressiveScaleHook', scales=list(scales)),
        ]
    present = {hook.get('type') for hook in hooks}
    return hooks + [hook for hook in wanted if hook['type'] not in present]


def rss_overrides(cfg, level: str,
                  scales: Sequence[int] = IMAGE_SCALES) -> Dict[str, Any]:
    """What an RSS child config of ``cfg`` (a loaded mmengine ``Config``)
    sets: ``model`` heads, ``custom_hooks``, ``custom_imports`` and
    ``randomness.diff_rank_seed`` (each rank samples its actions from its
    own random stream; the base's ``randomness`` kept, ``seed=None`` when it
    has none: mmengine's ``set_randomness`` needs a seed)."""
    model = rss_model(cfg['model'], level, scales)
    return dict(
        custom_imports=dict(
            imports=rss_custom_imports(cfg), allow_failed_imports=False),
        randomness=dict(
            cfg.get('randomness') or dict(seed=None), diff_rank_seed=True),
        model=model,
        custom_hooks=rss_hooks(cfg.get('custom_hooks'), level, scales))
