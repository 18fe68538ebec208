from .camvid import CamVidDataset
from .checks import CheckedSegDataset, DataRootError
from .synthetic import SyntheticShapesDataset
from .transforms import CheckedLoadAnnotations, LabelFileError

__all__ = [
    'CamVidDataset', 'SyntheticShapesDataset', 'CheckedSegDataset',
    'CheckedLoadAnnotations',
    'DataRootError', 'LabelFileError'
]
