from .camvid import CamVidDataset
from .checks import DataRootError
from .synthetic import SyntheticShapesDataset
from .transforms import CheckedLoadAnnotations, LabelFileError

__all__ = [
    'CamVidDataset', 'SyntheticShapesDataset', 'CheckedLoadAnnotations',
    'DataRootError', 'LabelFileError'
]
