from .loading import (CheckedLoadAnnotations, CheckedLoadImageFromFile,
                      ImageFileError, LabelFileError)

__all__ = [
    'CheckedLoadAnnotations', 'CheckedLoadImageFromFile', 'ImageFileError',
    'LabelFileError'
]
