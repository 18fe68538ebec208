"""Bad configs and bad data fail early with errors naming the file/key and fix."""
import os.path as osp
import shutil

import cv2
import numpy as np
import pytest
from mmengine.config import Config
from mmengine.runner import Runner
from mmseg.registry import DATASETS

import rss_mmseg  # noqa: F401
from rss_mmseg.datasets import DataRootError, LabelFileError
from rss_mmseg.utils import ConfigError, check_config
from tests.conftest import (REPO_ROOT, SYNTHETIC_CONFIG, run_tool,
                            tiny_run_overrides)


def _synthetic_dataset_cfg(data_root, split='train'):
    cfg = Config.fromfile(SYNTHETIC_CONFIG)
    ds = cfg[f'{split}_dataloader'].dataset
    ds.data_root = data_root
    return ds


def test_missing_data_root_names_folder_and_fix(tmp_path):
    missing = str(tmp_path / 'nowhere')
    with pytest.raises(DataRootError) as err:
        DATASETS.build(_synthetic_dataset_cfg(missing))
    msg = str(err.value)
    assert missing in msg and 'data_root' in msg
    assert 'tools/dataset_converters/synthetic.py' in msg


def test_missing_camvid_root_says_how_to_convert(tmp_path):
    cfg = Config.fromfile(
        osp.join(REPO_ROOT, 'configs/_base_/datasets/camvid.py'))
    cfg.train_dataloader.dataset.data_root = str(tmp_path)
    with pytest.raises(DataRootError, match='dataset_converters/camvid.py'):
        DATASETS.build(cfg.train_dataloader.dataset)


def test_empty_image_folder_names_suffix(tmp_path):
    for sub in ('img_dir/train', 'ann_dir/train'):
        (tmp_path / sub).mkdir(parents=True)
    with pytest.raises(DataRootError, match="'.png'"):
        DATASETS.build(_synthetic_dataset_cfg(str(tmp_path)))


@pytest.fixture
def damaged_root(synthetic_root, tmp_path):
    root = str(tmp_path / 'damaged')
    shutil.copytree(synthetic_root, root)
    return root


def test_corrupted_label_names_file(damaged_root):
    label = osp.join(damaged_root, 'ann_dir/train/00003.png')
    with open(label, 'wb') as f:
        f.write(b'not a png at all')
    dataset = DATASETS.build(_synthetic_dataset_cfg(damaged_root))
    with pytest.raises(LabelFileError) as err:
        dataset.prepare_data(3)
    assert '00003.png' in str(err.value) and 'Fix' in str(err.value)


def test_wrong_sized_label_names_both_files(damaged_root):
    label = osp.join(damaged_root, 'ann_dir/train/00002.png')
    cv2.imwrite(label, np.zeros((10, 12), np.uint8))
    dataset = DATASETS.build(_synthetic_dataset_cfg(damaged_root))
    with pytest.raises(LabelFileError) as err:
        dataset.prepare_data(2)
    msg = str(err.value)
    assert 'ann_dir/train/00002.png' in msg
    assert 'img_dir/train/00002.png' in msg and '(10, 12)' in msg


def test_missing_label_file_names_it(damaged_root):
    import os
    os.remove(osp.join(damaged_root, 'ann_dir/train/00001.png'))
    dataset = DATASETS.build(_synthetic_dataset_cfg(damaged_root))
    with pytest.raises(LabelFileError, match='00001.png.*does not exist'):
        dataset.prepare_data(1)


def test_num_classes_mismatch_names_key(synthetic_root, tmp_path):
    cfg = Config.fromfile(SYNTHETIC_CONFIG)
    cfg.merge_from_dict(tiny_run_overrides(synthetic_root, str(tmp_path), 1))
    cfg.model.decode_head.num_classes = 5
    runner = Runner.from_cfg(cfg)
    with pytest.raises(ValueError) as err:
        runner.train()
    msg = str(err.value)
    assert 'model.decode_head.num_classes = 5' in msg
    assert 'SyntheticShapesDataset' in msg and 'num_classes=6' in msg


def test_unknown_component_names_key_and_suggests():
    cfg = Config.fromfile(SYNTHETIC_CONFIG)
    cfg.model.decode_head.type = 'DepthwiseSeparableFCNHed'
    cfg.train_dataloader.dataset.pipeline[1].type = 'CheckedLoadAnnotation'
    with pytest.raises(ConfigError) as err:
        check_config(cfg, 'my_config.py')
    msg = str(err.value)
    assert msg.startswith('my_config.py')
    assert "model.decode_head.type = 'DepthwiseSeparableFCNHed'" in msg
    assert 'Did you mean DepthwiseSeparableFCNHead' in msg
    assert 'train_dataloader.dataset.pipeline[1].type' in msg
    assert 'custom_imports' in msg


def test_unknown_component_via_train_tool(tmp_path):
    result = run_tool('train.py', [
        SYNTHETIC_CONFIG, '--work-dir', str(tmp_path), '--cfg-options',
        'model.backbone.type=FastSCN'
    ])
    assert result.returncode != 0
    assert 'model.backbone.type' in result.stderr
    assert 'FastSCNN' in result.stderr


def test_unknown_reward_and_loss_types_are_named():
    cfg = Config.fromfile(
        osp.join(REPO_ROOT, 'configs/rss',
                 'rss-image_fast-scnn_1xb8-1k_synthetic-128x128.py'))
    cfg.model.decode_head.reward.type = 'ImageMIoUReword'
    cfg.model.decode_head.loss.type = 'PSDLos'
    with pytest.raises(ConfigError) as err:
        check_config(cfg, 'rss-image.py')
    msg = str(err.value)
    assert "model.decode_head.reward.type = 'ImageMIoUReword'" in msg
    assert 'Did you mean ImageMIoUReward' in msg
    assert "model.decode_head.loss.type = 'PSDLos'" in msg
    assert 'PSDLoss' in msg
