"""CamVid (SegNet split) in mmseg layout, 11 classes, void ignored as 255."""
from mmseg.registry import DATASETS

from .checks import CheckedSegDataset


@DATASETS.register_module()
class CamVidDataset(CheckedSegDataset):
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
    FIX_HINT = ('convert the SegNet CamVid folder with `python '
                'tools/dataset_converters/camvid.py SEGNET_CAMVID_DIR -o '
                'data/camvid`')
