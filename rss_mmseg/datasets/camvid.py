"""CamVid (SegNet split) in mmseg layout, 11 classes, void ignored as 255."""
from mmseg.registry import DATASETS
from mmseg.datasets import BaseSegDataset

from .checks import check_data_folders, check_not_empty

CAMVID_FIX = ('convert the SegNet CamVid folder with '
              '`python tools/dataset_converters/camvid.py SEGNET_CAMVID_DIR '
              '-o data/camvid`')


@DATASETS.register_module()
class CamVidDataset(BaseSegDataset):
    """CamVid dataset as split by SegNet (367 train / 101 val / 233 test).

    Brostow et al., "Semantic object classes in video: A high-definition
    ground truth database", PRL 2009. Expects the layout written by
    ``tools/dataset_converters/camvid.py``: ``img_dir/{train,val,test}/*.png``
    and ``ann_dir/{train,val,test}/*.png`` with labels 0..10 and 255 for void.
    """
    METAINFO = dict(
        classes=('sky', 'building', 'pole', 'road', 'pavement', 'tree',
                 'sign_symbol', 'fence', 'car', 'pedestrian', 'bicyclist'),
        palette=[[128, 128, 128], [128, 0, 0], [192, 192, 128],
                 [128, 64, 128], [60, 40, 222], [128, 128, 0],
                 [192, 128, 128], [64, 64, 128], [64, 0, 128],
                 [64, 64, 0], [0, 128, 192]])

    def __init__(self,
                 img_suffix: str = '.png',
                 seg_map_suffix: str = '.png',
                 **kwargs) -> None:
        super().__init__(
            img_suffix=img_suffix, seg_map_suffix=seg_map_suffix, **kwargs)

    def load_data_list(self) -> list:
        check_data_folders(self, CAMVID_FIX)
        data_list = super().load_data_list()
        check_not_empty(self, data_list, CAMVID_FIX)
        return data_list
