"""tools/misc/rss_config.py writes the RSS version of any mmseg config."""
import pytest
from mmengine.config import Config

from rss_mmseg.utils import check_config
from tests.conftest import load_tool

DEEPLAB = 'mmseg::deeplabv3plus/deeplabv3plus_r18-d8_4xb2-80k_cityscapes-' \
    '512x1024.py'
OCRNET = 'mmseg::ocrnet/ocrnet_hr18s_4xb2-40k_cityscapes-512x1024.py'
CONVNEXT = 'mmseg::convnext/convnext-tiny_upernet_8xb2-amp-160k_ade20k-' \
    '512x512.py'
POINTREND = 'mmseg::point_rend/pointrend_r50_4xb2-80k_cityscapes-512x1024.py'


@pytest.fixture(scope='module')
def tool():
    return load_tool('misc/rss_config.py', 'rss_config_tool')


def convert(tool, tmp_path, source, level, check=True):
    out = str(tmp_path / f'{level}.py')
    argv = [source, '--level', level, '-o', out]
    code = tool.main(argv if check else argv + ['--no-check'])
    return code, out


@pytest.mark.parametrize('level', ['pixel', 'image'])
def test_heads_wrapped_auxiliary_head_per_level(tool, tmp_path, level):
    code, out = convert(tool, tmp_path, DEEPLAB, level)
    assert code == 0
    cfg = Config.fromfile(out)
    check_config(cfg, out)
    head = cfg.model.decode_head
    assert head.type == 'RSSHead'
    assert head.head.type == 'DepthwiseSeparableASPPHead'
    assert head.head.c1_in_channels == 64  # the base's head, whole
    hooks = [h['type'] for h in cfg.custom_hooks]
    assert {'NumClassesCheckHook', 'RandomStateHook'} <= set(hooks)
    assert cfg.randomness.diff_rank_seed is True  # one stream per rank
    if level == 'pixel':
        assert head.reward.type == 'PixelMatchReward'
        aux = cfg.model.auxiliary_head
        assert aux.type == 'RSSHead' and aux.head.type == 'FCNHead'
        assert aux.loss.loss_weight == 0.4  # the stock auxiliary weight
        assert 'LabelLeakCheckHook' not in hooks
    else:
        assert head.reward.type == 'ImageMIoUReward'
        assert head.num_samples == 32 and head.scales == 8
        assert cfg.model.auxiliary_head is None
        psr = [h for h in cfg.custom_hooks
               if h['type'] == 'ProgressiveScaleHook']
        assert psr and psr[0]['scales'] == [8, 16, 32, 64]
        assert 'LabelLeakCheckHook' in hooks
    # everything else is the base's
    assert cfg.train_cfg.max_iters == 80000
    assert cfg.model.backbone.depth == 18


def test_cascade_stages_each_wrapped(tool, tmp_path):
    code, out = convert(tool, tmp_path, OCRNET, 'image')
    assert code == 0
    stages = Config.fromfile(out).model.decode_head
    assert [s.type for s in stages] == ['RSSHead', 'RSSHead']
    assert [s.head.type for s in stages] == ['FCNHead', 'OCRHead']


def test_base_custom_imports_kept(tool, tmp_path):
    code, out = convert(tool, tmp_path, CONVNEXT, 'pixel', check=False)
    assert code == 0
    imports = Config.fromfile(out).custom_imports.imports
    assert imports == ['mmpretrain.models', 'rss_mmseg']


def test_refused_head_reported_with_the_fix(tool, tmp_path, capsys):
    code, out = convert(tool, tmp_path, POINTREND, 'image')
    assert code == 1
    err = capsys.readouterr().err
    assert 'its model does not build' in err
    assert 'cannot train PointHead from an image-level reward' in err
    assert 'Fix:' in err


def test_missing_source_is_an_error(tool, tmp_path, capsys):
    code, _ = convert(tool, tmp_path, str(tmp_path / 'nope.py'), 'pixel')
    assert code == 2
    assert 'no such config' in capsys.readouterr().err
