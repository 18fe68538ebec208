from .camvid import CamVidDataset
from .checks import CheckedSegDataset, DataRootError
from .synthetic import SyntheticShapesDataset
from .transforms import (CheckedLoadAnnotations, CheckedLoadImageFromFile,
                         ImageFileError, LabelFileError)

__all__ = [
    'CamVidDataset', 'SyntheticShapesDataset', 'CheckedSegDataset',
    'CheckedLoadAnnotations', 'CheckedLoadImageFromFile', 'DataRootError',
    'LabelFileError', 'ImageFileError'
]
