from .loading import CheckedLoadAnnotations, LabelFileError

__all__ = ['CheckedLoadAnnotations', 'LabelFileError']
