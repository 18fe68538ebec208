"""check_config accepts what mmseg's own train script builds (issue 15):
TASK_UTILS sub-configs, scoped types (``mmpretrain.ConvNeXt``), and names a
missing package (mmdet) instead of calling its components unknown."""
import importlib.util
import sys
import time

import pytest
from mmengine.config import Config

from rss_mmseg.utils import ConfigError, check_config
from rss_mmseg.utils.config_imports import resolve_config_path
from tests.conftest import (SYNTHETIC_CONFIG, as_cfg_options, run_tool,
                            tiny_run_overrides)

STDC = 'mmseg::stdc/stdc1_4xb12-80k_cityscapes-512x1024.py'
CONVNEXT = ('mmseg::convnext/'
            'convnext-tiny_upernet_8xb2-amp-160k_ade20k-512x512.py')
MASK2FORMER = ('mmseg::mask2former/'
               'mask2former_r50_8xb2-90k_cityscapes-512x1024.py')
# the same family with custom_imports = dict(imports='mmdet.models')
MASK2FORMER_ADE = ('mmseg::mask2former/'
                   'mask2former_r50_8xb2-160k_ade20k-512x512.py')

MMDET_INSTALLED = importlib.util.find_spec('mmdet') is not None
needs_no_mmdet = pytest.mark.skipif(
    MMDET_INSTALLED, reason='mmdet is installed: its components resolve')


def load(ref: str, import_custom_modules: bool = True) -> Config:
    return Config.fromfile(
        resolve_config_path(ref), import_custom_modules=import_custom_modules)


def test_stdc_ohem_sampler_is_checked_in_task_utils():
    cfg = load(STDC)
    assert cfg.model.decode_head.sampler.type == 'OHEMPixelSampler'
    check_config(cfg, STDC)


def test_misspelled_sampler_is_reported_with_close_names():
    cfg = load(STDC)
    cfg.model.decode_head.sampler.type = 'OHEMPixelSampeler'
    with pytest.raises(ConfigError) as err:
        check_config(cfg, 'stdc.py')
    msg = str(err.value)
    assert msg.startswith('stdc.py: unknown component name(s)')
    assert "model.decode_head.sampler.type = 'OHEMPixelSampeler'" in msg
    assert 'task util registry' in msg
    assert 'Did you mean OHEMPixelSampler' in msg


@pytest.mark.parametrize('import_custom_modules', [True, False])
def test_convnext_scoped_mmpretrain_type_passes(import_custom_modules):
    cfg = load(CONVNEXT, import_custom_modules)
    assert cfg.model.backbone.type == 'mmpretrain.ConvNeXt'
    assert cfg.custom_imports.imports == 'mmpretrain.models'
    check_config(cfg, CONVNEXT)


def test_unknown_name_in_an_installed_scope_suggests_from_that_scope():
    cfg = load(CONVNEXT)
    cfg.model.backbone.type = 'mmpretrain.ConvNeX'
    with pytest.raises(ConfigError) as err:
        check_config(cfg, 'convnext.py')
    msg = str(err.value)
    assert "model.backbone.type = 'mmpretrain.ConvNeX'" in msg
    assert 'mmpretrain::' in msg
    assert 'Did you mean ConvNeXt' in msg


def _assert_names_mmdet(msg: str, cfg_name: str):
    assert msg.startswith(f'{cfg_name}: ')
    assert 'unknown component' not in msg
    assert "'mmdet' package, which is not installed" in msg
    assert ("model.decode_head.pixel_decoder.type = "
            "'mmdet.MSDeformAttnPixelDecoder'") in msg
    # TASK_UTILS sub-configs of the mmdet head are named the same way
    assert ("model.decode_head.train_cfg.sampler.type = "
            "'mmdet.MaskPseudoSampler'") in msg
    assert 'pip install mmdet' in msg and 'mim install mmdet' in msg


@needs_no_mmdet
def test_mask2former_without_mmdet_names_the_package():
    cfg = load(MASK2FORMER)
    with pytest.raises(ConfigError) as err:
        check_config(cfg, 'mask2former.py')
    _assert_names_mmdet(str(err.value), 'mask2former.py')


@needs_no_mmdet
def test_mask2former_custom_imports_of_missing_package_are_named():
    cfg = load(MASK2FORMER_ADE, import_custom_modules=False)
    with pytest.raises(ConfigError) as err:
        check_config(cfg, 'mask2former-ade.py')
    msg = str(err.value)
    _assert_names_mmdet(msg, 'mask2former-ade.py')
    assert "custom_imports.imports[0] = 'mmdet.models'" in msg


@needs_no_mmdet
def test_a_bare_mmdet_folder_on_the_path_is_not_an_install(
        tmp_path, monkeypatch):
    (tmp_path / 'mmdet').mkdir()  # imports as a namespace package
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg = load(MASK2FORMER)
    try:
        with pytest.raises(ConfigError) as err:
            check_config(cfg, 'mask2former.py')
    finally:
        # the imported folder must not outlive the test: in sys.modules it
        # would stay importable (find_spec would see an mmdet) for every
        # later test of this process
        for name in [m for m in sys.modules if m.split('.')[0] == 'mmdet']:
            del sys.modules[name]
    _assert_names_mmdet(str(err.value), 'mask2former.py')


@pytest.mark.skipif(not MMDET_INSTALLED, reason='needs mmdet')
def test_mask2former_with_mmdet_passes():
    check_config(load(MASK2FORMER), MASK2FORMER)


def test_types_given_as_classes_and_albu_transforms_are_not_checked():
    from mmseg.models.backbones import ResNet
    cfg = Config(
        dict(
            model=dict(type='EncoderDecoder', backbone=dict(type=ResNet)),
            train_dataloader=dict(
                dataset=dict(
                    type='CityscapesDataset',
                    pipeline=[
                        dict(
                            type='Albu',
                            transforms=[dict(type='RandomBrightnessContrast')
                                        ])
                    ]))))
    check_config(cfg)


def test_train_tool_gets_past_the_check_with_an_ohem_sampler(
        synthetic_root, tmp_path):
    """tools/train.py trains one iteration of a stock-head config that uses
    mmseg's OHEMPixelSampler (TASK_UTILS), which used to be refused."""
    options = tiny_run_overrides(synthetic_root, str(tmp_path), 1)
    options.update({
        'model.decode_head.sampler.type': 'OHEMPixelSampler',
        'model.decode_head.sampler.thresh': 0.7,
        'model.decode_head.sampler.min_kept': 100,
    })
    start = time.monotonic()
    result = run_tool('train.py', [
        SYNTHETIC_CONFIG, '--work-dir',
        str(tmp_path), '--cfg-options', *as_cfg_options(options)
    ])
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'unknown component' not in result.stderr
    print(f'train.py, 1 iteration with OHEM: {time.monotonic() - start:.1f}s')
