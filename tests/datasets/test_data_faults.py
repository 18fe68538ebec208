"""A bad image file in the middle of a dataset fails naming the file."""
import os
import os.path as osp
import shutil

import pytest
from mmengine.config import Config
from mmseg.registry import DATASETS

from rss_mmseg.datasets.transforms.loading import ImageFileError
from tests.conftest import (REPO_ROOT, as_cfg_options, run_tool,
                            tiny_run_overrides)

CONFIG = osp.join(REPO_ROOT, 'configs/rss',
                  'rss-pixel_fast-scnn_1xb8-1k_synthetic-128x128.py')
BAD = 'img_dir/train/00007.png'  # the middle of the 16 training images


def _truncate(path: str) -> None:
    with open(path, 'rb') as f:
        data = f.read()
    with open(path, 'wb') as f:
        f.write(data[:len(data) // 2])


@pytest.fixture
def damaged_root(synthetic_root, tmp_path):
    root = str(tmp_path / 'damaged')
    shutil.copytree(synthetic_root, root)
    _truncate(osp.join(root, BAD))
    return root


def _dataset(data_root: str, **loader_args):
    ds = Config.fromfile(CONFIG).train_dataloader.dataset
    ds.data_root = data_root
    assert ds.pipeline[0].type == 'CheckedLoadImageFromFile'
    ds.pipeline[0].update(loader_args)
    return DATASETS.build(ds)


def _index_of(dataset, path: str) -> int:
    return next(i for i in range(len(dataset))
                if dataset.get_data_info(i)['img_path'].endswith(path))


@pytest.mark.parametrize('backend', ['cv2', 'pillow'])
def test_truncated_image_names_file(damaged_root, backend):
    dataset = _dataset(damaged_root, imdecode_backend=backend)
    index = _index_of(dataset, BAD)
    dataset.prepare_data(index - 1)  # its neighbours load fine
    with pytest.raises(ImageFileError) as err:
        dataset.prepare_data(index)
    msg = str(err.value)
    assert BAD in msg and 'Fix' in msg


def test_missing_image_names_file(damaged_root):
    dataset = _dataset(damaged_root)
    os.remove(osp.join(damaged_root, 'img_dir/train/00003.png'))
    with pytest.raises(ImageFileError, match='00003.png.*does not exist'):
        dataset.prepare_data(3)


def test_ignore_empty_still_skips(damaged_root):
    dataset = _dataset(damaged_root, ignore_empty=True)
    index = _index_of(dataset, BAD)
    assert dataset.prepare_data(index) is None  # mmengine refetches another


def test_training_stops_naming_the_truncated_image(damaged_root, tmp_path):
    # 8 iterations of 2 images visit all 16 (InfiniteSampler, one epoch)
    overrides = tiny_run_overrides(damaged_root, str(tmp_path), 8)
    overrides['train_cfg.val_begin'] = 9
    result = run_tool('train.py',
                      [CONFIG, '--cfg-options', *as_cfg_options(overrides)])
    assert result.returncode != 0
    assert 'ImageFileError' in result.stderr
    assert osp.join(damaged_root, BAD) in result.stderr
