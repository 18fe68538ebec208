"""Image and label loading that names the file when it is bad."""
from typing import Optional

from mmcv.transforms import LoadImageFromFile
from mmseg.datasets.transforms import LoadAnnotations
from mmseg.registry import TRANSFORMS


class LabelFileError(ValueError):
    """A label map is missing, undecodable, or does not fit its image."""


class ImageFileError(ValueError):
    """An image file is missing or cannot be decoded."""


@TRANSFORMS.register_module()
class CheckedLoadImageFromFile(LoadImageFromFile):
    """:class:`mmcv.transforms.LoadImageFromFile` with clear errors.

    On a truncated or corrupted image mmcv's loader fails with a bare
    ``AssertionError: failed to load image: PATH`` (cv2 backend; under
    ``python -O`` the assert is gone and it fails on ``None.shape``, naming
    nothing), or with pillow's ``image file is truncated`` / ``cannot
    identify image file <BytesIO>``, which name no file. This loader raises
    :class:`ImageFileError` naming the image and the fix, with every
    backend. ``ignore_empty=True`` keeps mmcv's behaviour (skip the
    sample). Arguments are mmcv's.
    """

    def transform(self, results: dict) -> Optional[dict]:
        img_path = results['img_path']
        try:
            return super().transform(results)
        except FileNotFoundError:
            raise ImageFileError(
                f'image file {img_path!r} does not exist. Fix: check '
                'data_root, data_prefix.img_path and img_suffix, or re-run '
                'the dataset converter.') from None
        except (AssertionError, AttributeError, OSError, ValueError) as err:
            # cv2 decodes to None: mmcv's assert (AttributeError on
            # ``None.shape`` under python -O); pillow raises an OSError
            if self.ignore_empty:
                return None
            raise ImageFileError(
                f'cannot decode image file {img_path!r}: truncated, '
                f'corrupted or not an image ({type(err).__name__}). Fix: '
                're-create it with the dataset converter or remove the '
                'sample.') from err


@TRANSFORMS.register_module()
class CheckedLoadAnnotations(LoadAnnotations):
    """:class:`mmseg.datasets.transforms.LoadAnnotations` with clear errors.

    mmseg's loader fails with ``cannot identify image file <BytesIO>`` (or
    ``'NoneType' object has no attribute 'squeeze'`` with cv2) on a corrupted
    PNG and trains silently on a label map whose size differs
    from its image (until a crop or the loss breaks). This loader raises
    :class:`LabelFileError` naming the label file and its image instead.
    Place it right after ``LoadImageFromFile``; arguments are mmseg's.
    """

    def _load_seg_map(self, results: dict) -> None:
        seg_path = results['seg_map_path']
        img_path = results.get('img_path', '?')
        try:
            super()._load_seg_map(results)
        except FileNotFoundError:
            raise LabelFileError(
                f'label file {seg_path!r} (for image {img_path!r}) does not '
                'exist. Fix: check data_prefix.seg_map_path and '
                'seg_map_suffix, or re-run the dataset converter.') from None
        except (AttributeError, OSError, ValueError) as err:
            # cv2 returns None (AttributeError on .squeeze()), pillow raises
            # UnidentifiedImageError (an OSError).
            raise LabelFileError(
                f'cannot decode label file {seg_path!r} (for image '
                f'{img_path!r}): corrupted or not an image '
                f'({type(err).__name__}). Fix: re-create it with the dataset '
                'converter or remove the sample.') from err
        seg = results['gt_seg_map']
        img_shape = tuple(results['ori_shape'][:2])
        if seg.ndim != 2 or seg.shape != img_shape:
            raise LabelFileError(
                f'label file {seg_path!r} has shape {seg.shape} but its image '
                f'{img_path!r} is {img_shape}: a label map must be a '
                'single-channel class-id image of the same height and width. '
                'Fix: re-create it with the dataset converter.')
