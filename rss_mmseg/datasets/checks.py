"""Up-front checks that turn missing or empty data folders into actionable errors.

mmseg's ``BaseSegDataset`` fails deep inside ``os.scandir`` (or silently with
zero samples) when a data root is wrong; these checks name the folder, the
config key and the command that creates the data.
"""
import os.path as osp

from mmseg.datasets import BaseSegDataset


class DataRootError(FileNotFoundError):
    """A dataset folder is missing or holds no samples."""


def check_data_folders(dataset: BaseSegDataset, fix_hint: str) -> None:
    """Raise :class:`DataRootError` unless the image (and label) folders exist.

    Args:
        dataset: the dataset being initialised (its ``data_prefix`` is joined
            with ``data_root`` already).
        fix_hint: how a user creates the data, e.g. the converter command.
    """
    name = type(dataset).__name__
    for key in ('img_path', 'seg_map_path'):
        folder = dataset.data_prefix.get(key, '')
        if key == 'seg_map_path' and not folder:
            continue  # label-free data (image-level RSS with a user scorer)
        if not osp.isdir(folder):
            raise DataRootError(
                f'{name}: folder {folder!r} does not exist (from config keys '
                f'data_root={dataset.data_root!r}, data_prefix.{key}). '
                f'Fix: {fix_hint}, or point data_root at your copy.')


def check_not_empty(dataset: BaseSegDataset, data_list: list,
                    fix_hint: str) -> None:
    """Raise :class:`DataRootError` when a dataset found no image files."""
    if not data_list:
        raise DataRootError(
            f'{type(dataset).__name__}: no images ending in '
            f'{dataset.img_suffix!r} under '
            f'{dataset.data_prefix.get("img_path")!r}. Fix: {fix_hint}, or '
            f'set img_suffix to the extension your images have.')


class CheckedSegDataset(BaseSegDataset):
    """``BaseSegDataset`` (PNG images and labels by default) that fails at
    build time, naming the folder and ``FIX_HINT``, when data is missing."""
    FIX_HINT = 'create the dataset folders'

    def __init__(self,
                 img_suffix: str = '.png',
                 seg_map_suffix: str = '.png',
                 **kwargs) -> None:
        super().__init__(
            img_suffix=img_suffix, seg_map_suffix=seg_map_suffix, **kwargs)

    def load_data_list(self) -> list:
        check_data_folders(self, self.FIX_HINT)
        data_list = super().load_data_list()
        check_not_empty(self, data_list, self.FIX_HINT)
        return data_list
