"""RSS on every model family mmseg ships: one config per family, wrapped
at both reward levels by ``rss_mmseg.utils.rss_config`` (the converter's
recipe), one training step and one prediction on CPU at 64x64, no
downloads.

A family either trains (finite losses, a gradient on the wrapped head,
prediction of the right size), is refused when the model is built with an
error naming the head, why and the fix (``REFUSED``), or is skipped because
it needs a package that is not installed (``NEEDS``). A family that mmseg
ships but this table does not list fails ``test_every_family_is_listed``.
"""
import glob
import importlib.util
import os.path as osp
import re

import mmseg
import pytest
import torch
from mmengine.config import Config, ConfigDict
from mmengine.model import revert_sync_batchnorm
from mmseg.registry import MODELS

import rss_mmseg  # noqa: F401
from rss_mmseg.utils.rss_config import LEVELS, rss_model
from tests.test_configs import tiny_batch

MMSEG_CONFIGS = osp.join(osp.dirname(mmseg.__file__), '.mim', 'configs')

# family -> the smallest config of the family in mmseg 1.2.2
FAMILIES = {
    'ann': 'ann_r50-d8_4xb2-40k_cityscapes-512x1024.py',
    'apcnet': 'apcnet_r50-d8_4xb2-40k_cityscapes-512x1024.py',
    'beit': 'beit-base_upernet_8xb2-160k_ade20k-640x640.py',
    'bisenetv1': 'bisenetv1_r18-d32_4xb4-160k_cityscapes-1024x1024.py',
    'bisenetv2': 'bisenetv2_fcn_4xb4-160k_cityscapes-1024x1024.py',
    'ccnet': 'ccnet_r50-d8_4xb2-40k_cityscapes-512x1024.py',
    'cgnet': 'cgnet_fcn_4xb8-60k_cityscapes-512x1024.py',
    'convnext': 'convnext-tiny_upernet_8xb2-amp-160k_ade20k-512x512.py',
    'danet': 'danet_r50-d8_4xb2-40k_cityscapes-512x1024.py',
    'ddrnet': 'ddrnet_23-slim_in1k-pre_2xb6-120k_cityscapes-1024x1024.py',
    'deeplabv3': 'deeplabv3_r18-d8_4xb2-80k_cityscapes-512x1024.py',
    'deeplabv3plus': 'deeplabv3plus_r18-d8_4xb2-80k_cityscapes-512x1024.py',
    'dmnet': 'dmnet_r50-d8_4xb2-40k_cityscapes-512x1024.py',
    'dnlnet': 'dnl_r50-d8_4xb2-40k_cityscapes-512x1024.py',
    'dpt': 'dpt_vit-b16_8xb2-160k_ade20k-512x512.py',
    'emanet': 'emanet_r50-d8_4xb2-80k_cityscapes-512x1024.py',
    'encnet': 'encnet_r50-d8_4xb2-40k_cityscapes-512x1024.py',
    'erfnet': 'erfnet_fcn_4xb4-160k_cityscapes-512x1024.py',
    'fastfcn': 'fastfcn_r50-d32_jpu_enc_4xb2-80k_cityscapes-512x1024.py',
    'fastscnn': 'fast_scnn_8xb4-160k_cityscapes-512x1024.py',
    'fcn': 'fcn_r18-d8_4xb2-80k_cityscapes-512x1024.py',
    'gcnet': 'gcnet_r50-d8_4xb2-40k_cityscapes-512x1024.py',
    'hrnet': 'fcn_hr18s_4xb2-40k_cityscapes-512x1024.py',
    'icnet': 'icnet_r18-d8_4xb2-80k_cityscapes-832x832.py',
    'isanet': 'isanet_r50-d8_4xb2-40k_cityscapes-512x1024.py',
    'knet': 'knet-s3_r50-d8_fcn_8xb2-adamw-80k_ade20k-512x512.py',
    'mae': 'mae-base_upernet_8xb2-amp-160k_ade20k-512x512.py',
    'mask2former': 'mask2former_r50_8xb2-90k_cityscapes-512x1024.py',
    'maskformer': 'maskformer_r50-d32_8xb2-160k_ade20k-512x512.py',
    'mobilenet_v2': 'mobilenet-v2-d8_deeplabv3_4xb2-80k_cityscapes-512x1024.py',
    'mobilenet_v3': 'mobilenet-v3-d8-s_lraspp_4xb4-320k_cityscapes-512x1024.py',
    'nonlocal_net': 'nonlocal_r50-d8_4xb2-40k_cityscapes-512x1024.py',
    'ocrnet': 'ocrnet_hr18s_4xb2-40k_cityscapes-512x1024.py',
    'pidnet': 'pidnet-s_2xb6-120k_1024x1024-cityscapes.py',
    'point_rend': 'pointrend_r50_4xb2-80k_cityscapes-512x1024.py',
    'poolformer': 'fpn_poolformer_s12_8xb4-40k_ade20k-512x512.py',
    'psanet': 'psanet_r50-d8_4xb2-40k_cityscapes-512x1024.py',
    'pspnet': 'pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py',
    'resnest': 'resnest_s101-d8_fcn_4xb2-80k_cityscapes-512x1024.py',
    'san': 'san-vit-b16_voc12aug-640x640.py',
    'segformer': 'segformer_mit-b0_8xb2-160k_ade20k-512x512.py',
    'segmenter': 'segmenter_vit-t_mask_8xb1-160k_ade20k-512x512.py',
    'segnext': 'segnext_mscan-t_1xb16-adamw-160k_ade20k-512x512.py',
    'sem_fpn': 'fpn_r50_4xb2-80k_cityscapes-512x1024.py',
    'setr': 'setr_vit-l_naive_8xb1-80k_cityscapes-768x768.py',
    'stdc': 'stdc1_4xb12-80k_cityscapes-512x1024.py',
    'swin': 'swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_'
    'ade20k-512x512.py',
    'twins': 'twins_pcpvt-s_fpn_fpnhead_8xb4-80k_ade20k-512x512.py',
    'unet': 'unet-s5-d16_fcn_4xb4-40k_drive-64x64.py',
    'upernet': 'upernet_r18_4xb2-40k_cityscapes-512x1024.py',
    'vit': 'vit_deit-s16_upernet_8xb2-80k_ade20k-512x512.py',
    'vpd': 'vpd_sd_4xb8-25k_nyu-512x512.py',
}
# families whose heads RSS refuses: level -> a phrase the error must hold
REFUSED = {
    'point_rend': {
        'image': 'cannot train PointHead from an image-level reward'
    },
    'san': {
        'pixel': 'RSSHead cannot wrap SideAdapterCLIPHead',
        'image': 'RSSHead cannot wrap SideAdapterCLIPHead'
    },
}
# families that need a package this environment may lack
NEEDS = {'mask2former': 'mmdet', 'maskformer': 'mmdet', 'vpd': 'ldm'}
# not model families: dataset-description configs
NOT_FAMILIES = ('_base_', 'dsdl')
SIZE = (64, 64)
# LRASPP pools with a 49x49 kernel at stride 8: it needs inputs >= 392
SIZES = {'mobilenet_v3': (448, 448)}


def _missing_package(family: str):
    package = NEEDS.get(family)
    if package and importlib.util.find_spec(package) is None:
        return package
    return None


def _without_pretrained(model: dict) -> dict:
    """Drop every pretrained checkpoint path: nothing is downloaded."""
    if isinstance(model, dict):
        model.pop('pretrained', None)
        if isinstance(model.get('init_cfg'), dict) and model['init_cfg'].get(
                'type') == 'Pretrained':
            model.pop('init_cfg')
        for value in model.values():
            _without_pretrained(value)
    elif isinstance(model, list):
        for value in model:
            _without_pretrained(value)
    return model


def load_family(family: str) -> Config:
    return Config.fromfile(
        osp.join(MMSEG_CONFIGS, family, FAMILIES[family]))


def test_every_family_is_listed():
    families = sorted(
        osp.basename(osp.dirname(p))
        for p in glob.glob(osp.join(MMSEG_CONFIGS, '*', '*.py')))
    unlisted = sorted(
        set(families) - set(FAMILIES) - set(NOT_FAMILIES))
    assert not unlisted, f'mmseg families not covered: {unlisted}'
    for family, name in FAMILIES.items():
        assert osp.isfile(osp.join(MMSEG_CONFIGS, family, name)), name


def _model_cfg(cfg: Config, level: str, size) -> ConfigDict:
    """The family's model converted to ``level``, without pretrained
    weights, at ``size``."""
    model_cfg = ConfigDict(
        _without_pretrained(rss_model(cfg.model.to_dict(), level)))
    if 'data_preprocessor' in model_cfg:
        model_cfg['data_preprocessor']['size'] = size
    if 'img_size' in model_cfg.get('backbone', {}):  # ViTs: fixed grids
        model_cfg.backbone.img_size = size
    return model_cfg


def _build_heads(model_cfg: ConfigDict):
    """The decode head (a ModuleList for cascades) and auxiliary head(s)
    of ``model_cfg``, built as the segmentor builds them."""
    decode = model_cfg.decode_head
    if isinstance(decode, list):
        decode = torch.nn.ModuleList(MODELS.build(h) for h in decode)
    else:
        decode = MODELS.build(decode)
    aux = model_cfg.get('auxiliary_head')
    if isinstance(aux, list):
        aux = torch.nn.ModuleList(MODELS.build(h) for h in aux)
    elif aux is not None:
        aux = MODELS.build(aux)
    return revert_sync_batchnorm(decode), (
        revert_sync_batchnorm(aux) if aux is not None else None)


def _train_and_predict(model, size, level: str) -> None:
    """One training step and one prediction; every (cascade) stage must
    get a gradient from the reward."""
    model.zero_grad(set_to_none=True)
    model.train()
    heads = model.decode_head if isinstance(
        model.decode_head, torch.nn.ModuleList) else [model.decode_head]
    inputs, samples = tiny_batch(heads[-1].num_classes, size=size)
    data = model.data_preprocessor(
        dict(inputs=list(inputs), data_samples=samples), training=True)
    losses = model.loss(data['inputs'], data['data_samples'])
    loss_keys = [k for k in losses if 'loss' in k]
    assert loss_keys, f'{level}: no loss_* in {list(losses)}'
    total = sum(losses[k] for k in loss_keys)
    assert torch.isfinite(total), (level, losses)
    total.backward()
    for head in heads:
        grads = [p.grad for p in head.parameters() if p.grad is not None]
        assert grads and any(g.abs().sum() > 0 for g in grads), (
            level, type(head.head).__name__)
    model.eval()
    with torch.no_grad():
        out = model.predict(data['inputs'], data['data_samples'])
    assert out[0].pred_sem_seg.data.shape[-2:] == size, level


@pytest.mark.parametrize('family', sorted(FAMILIES))
def test_family_trains_under_rss(family):
    """Both levels on one model: the segmentor is built once (pixel level)
    and its heads are rebuilt for the image level, which is all that
    differs (building the backbones dominates the test's time)."""
    missing = _missing_package(family)
    if missing:
        pytest.skip(f'{family} needs {missing}, which is not installed')
    cfg = load_family(family)
    size = SIZES.get(family, SIZE)
    model = None
    for level in LEVELS:
        model_cfg = _model_cfg(cfg, level, size)
        refusal = REFUSED.get(family, {}).get(level)
        if refusal:
            with pytest.raises(ValueError, match=re.escape(refusal)) as error:
                if model is None:
                    MODELS.build(model_cfg)
                else:
                    _build_heads(model_cfg)
            assert 'Fix:' in str(error.value), level
            continue
        torch.manual_seed(0)
        if model is None:
            model = revert_sync_batchnorm(MODELS.build(model_cfg))
        else:
            model.decode_head, aux = _build_heads(model_cfg)
            if 'auxiliary_head' in model_cfg:
                model.auxiliary_head = aux
        _train_and_predict(model, size, level)


@pytest.mark.parametrize('family', ['mask2former', 'maskformer'])
def test_mask_classification_heads_are_refused(family):
    """Refused by name before the head is built, so mmdet is not needed."""
    cfg = load_family(family)
    model_cfg = _without_pretrained(rss_model(cfg.model.to_dict(), 'pixel'))
    head_type = model_cfg['decode_head']['head']['type']
    with pytest.raises(ValueError) as error:
        MODELS.build(model_cfg['decode_head'])
    message = str(error.value)
    assert f'RSSHead cannot wrap {head_type}' in message
    assert 'classifies masks' in message and 'Fix:' in message
