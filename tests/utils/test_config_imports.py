"""custom_imports across _base_ configs (issue 15 item 4): an RSS config
keeps its base's imports next to 'rss_mmseg'."""
import os.path as osp

import pytest
from mmengine.config import Config

from rss_mmseg.utils import (ConfigError, base_config_paths,
                             base_custom_imports, check_config,
                             custom_imports_of, merged_custom_imports,
                             missing_base_imports, rss_custom_imports)
from rss_mmseg.utils.config_imports import resolve_config_path
from tests.conftest import REPO_ROOT, SYNTHETIC_CONFIG

CONVNEXT = ('mmseg::convnext/'
            'convnext-tiny_upernet_8xb2-amp-160k_ade20k-512x512.py')
DEEPLAB = ('mmseg::deeplabv3plus/'
           'deeplabv3plus_r50-d8_4xb4-40k_voc12aug-512x512.py')

RSS_CHILD = '''_base_ = {base!r}
custom_imports = dict(imports={imports!r}, allow_failed_imports=False)
model = dict(
    decode_head=dict(
        _delete_=True,
        type='RSSHead',
        head={{{{_base_.model.decode_head}}}},
        num_classes={{{{_base_.model.decode_head.num_classes}}}},
        reward=dict(type='PixelMatchReward', correct=1.0, wrong=0.0),
        loss=dict(type='PixelRewardLoss', baseline='mean', iw_power=1.0),
        num_samples=1))
'''


def write(path, text: str) -> str:
    path.write_text(text)
    return str(path)


def test_rss_custom_imports_keeps_the_base_imports_first():
    assert rss_custom_imports(CONVNEXT) == ['mmpretrain.models', 'rss_mmseg']
    assert rss_custom_imports(DEEPLAB) == ['rss_mmseg']
    assert rss_custom_imports(Config.fromfile(
        resolve_config_path(CONVNEXT))) == ['mmpretrain.models', 'rss_mmseg']


def test_rss_custom_imports_accepts_dicts_lists_and_no_repeats():
    base = dict(custom_imports=dict(imports='mmpretrain.models'))
    assert rss_custom_imports(base) == ['mmpretrain.models', 'rss_mmseg']
    assert rss_custom_imports(dict(imports='a')) == ['a', 'rss_mmseg']
    assert rss_custom_imports(None) == ['rss_mmseg']
    assert rss_custom_imports({}) == ['rss_mmseg']
    # already there: kept where it was, not repeated; order preserved
    assert rss_custom_imports(
        dict(custom_imports=dict(imports=['b', 'rss_mmseg', 'a']))) == [
            'b', 'rss_mmseg', 'a'
        ]
    assert rss_custom_imports(SYNTHETIC_CONFIG) == ['rss_mmseg']
    # several bases, as a list ``_base_``
    assert rss_custom_imports([
        dict(custom_imports=dict(imports=['a', 'b'])),
        dict(custom_imports=dict(imports=['b', 'c']))
    ]) == ['a', 'b', 'c', 'rss_mmseg']


def test_merged_custom_imports():
    bases = [dict(custom_imports=dict(imports='x')), dict()]
    assert merged_custom_imports(bases, 'y') == ['x', 'y']
    assert merged_custom_imports(bases, ['y', 'x']) == ['x', 'y']
    assert merged_custom_imports([], None) == []


def test_custom_imports_of_treats_a_string_as_one_import():
    assert custom_imports_of(dict(custom_imports=dict(imports='m'))) == ['m']
    assert custom_imports_of(dict()) == []
    assert custom_imports_of(CONVNEXT) == ['mmpretrain.models']


def test_base_config_paths_string_list_relative_and_scoped(tmp_path):
    (tmp_path / 'sub').mkdir()
    one = write(tmp_path / 'one.py', 'a = 1\n')
    two = write(tmp_path / 'two.py', 'b = 1\n')
    single = write(tmp_path / 'sub' / 'single.py', "_base_ = '../one.py'\n")
    several = write(tmp_path / 'sub' / 'several.py',
                    f"_base_ = ['../one.py', '../two.py', {DEEPLAB!r}]\n")
    assert base_config_paths(single) == [one]
    paths = base_config_paths(several)
    assert paths[:2] == [one, two]
    assert paths[2].endswith(
        osp.join('deeplabv3plus',
                 'deeplabv3plus_r50-d8_4xb4-40k_voc12aug-512x512.py'))
    assert osp.isfile(paths[2])
    assert base_config_paths(one) == []


def test_base_custom_imports_reads_the_merged_bases(tmp_path):
    mid = write(tmp_path / 'mid.py', f'_base_ = {CONVNEXT!r}\n')  # inherits
    local = write(tmp_path / 'local.py',
                  "custom_imports = dict(imports=['rss_mmseg'])\n")
    child = write(tmp_path / 'child.py', "_base_ = ['mid.py', 'local.py']\n")
    assert base_custom_imports(mid) == ['mmpretrain.models']
    assert base_custom_imports(child) == ['mmpretrain.models', 'rss_mmseg']


def test_missing_base_imports_finds_the_lost_import(tmp_path):
    lost = write(tmp_path / 'lost.py',
                 RSS_CHILD.format(base=CONVNEXT, imports=['rss_mmseg']))
    assert missing_base_imports(lost) == ['mmpretrain.models']
    kept = write(
        tmp_path / 'kept.py',
        RSS_CHILD.format(base=CONVNEXT, imports=rss_custom_imports(CONVNEXT)))
    assert missing_base_imports(kept) == []
    inherited = write(tmp_path / 'inherited.py', f'_base_ = {CONVNEXT!r}\n')
    assert missing_base_imports(inherited) == []
    repo_config = osp.join(
        REPO_ROOT, 'configs', 'rss',
        'rss-pixel_fast-scnn_1xb8-1k_synthetic-128x128.py')
    assert missing_base_imports(repo_config) == []


def test_rss_child_of_convnext_keeps_both_imports_and_passes_the_check(
        tmp_path):
    path = write(
        tmp_path / 'rss-pixel_convnext.py',
        RSS_CHILD.format(base=CONVNEXT, imports=rss_custom_imports(CONVNEXT)))
    cfg = Config.fromfile(path)  # imports mmpretrain.models and rss_mmseg
    assert custom_imports_of(cfg) == ['mmpretrain.models', 'rss_mmseg']
    assert cfg.model.decode_head.type == 'RSSHead'
    assert cfg.model.decode_head.head.type == 'UPerHead'
    assert cfg.model.backbone.type == 'mmpretrain.ConvNeXt'
    check_config(cfg, path)


def test_check_config_still_refuses_a_typo_in_an_rss_child(tmp_path):
    path = write(
        tmp_path / 'typo.py',
        RSS_CHILD.format(base=CONVNEXT,
                         imports=rss_custom_imports(CONVNEXT)).replace(
                             'PixelRewardLoss', 'PixelRewardLos'))
    with pytest.raises(ConfigError, match='Did you mean PixelRewardLoss'):
        check_config(Config.fromfile(path), path)
