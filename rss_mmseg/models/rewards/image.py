"""Image-level rewards: one score per sampled action map and image.

Every reward here is a function of the per-image confusion matrix of a
sampled map against the hidden reference, so all K samples and B images are
counted by one :func:`torch.bincount` (:func:`per_image_confusion`) and
scored by a few operations on the small (K, B, C, C) result.
"""
from numbers import Integral
from typing import List, Optional, Tuple

import torch
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from torch import Tensor

from ..policy import pixel_cells
from .pixel import stack_gt_sem_seg

__all__ = [
    'per_image_confusion', 'per_image_cell_confusion', 'ImageMIoUReward',
    'ImageAccuracyReward', 'ImageDiceReward'
]


def _is_positive_int(value) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool) \
        and value >= 1


def _check_actions(actions: Tensor) -> None:
    if actions.dim() != 4:
        raise ValueError('actions must have shape (K, B, H, W), got '
                         f'{tuple(actions.shape)}')
    if actions.dtype.is_floating_point or actions.dtype.is_complex \
            or actions.dtype == torch.bool:
        raise TypeError('actions must hold integer class indices, got '
                        f'dtype {actions.dtype}')


def _reference_range(reference: Tensor,
                     valid: Tensor) -> Optional[Tuple[int, int]]:
    """(min, max) of the non-ignored reference values, or None."""
    if not bool(valid.any()):
        return None
    low, high = torch.aminmax(reference.masked_fill(~valid, 0))
    return int(low), int(high)


def _bad_reference(value: int, num_classes: Optional[int]) -> ValueError:
    bound = 'is negative' if num_classes is None else \
        f'is not a class index for num_classes={num_classes}'
    return ValueError(f'reference value {value} {bound} (nor the '
                      'ignore_index); check ignore_index and num_classes')


def _count_pixels(actions: Tensor, reference: Tensor, valid: Tensor,
                  ref_classes: int, min_pred_classes: int) -> Tensor:
    """Counts of shape (P, K, B, ref_classes + 1) from one bincount.

    The flat index is ``pred * S + (k * B + b) * R1 + ref`` with
    ``R1 = ref_classes + 1`` and ``S = K * B * R1``; ignored pixels use the
    last reference slot. The predicted class is the most significant digit,
    so ``P = ceil(len / S)`` is one more than the largest action whatever
    it is, and a negative action gives a negative index, which
    ``bincount`` rejects.
    """
    K, B = actions.shape[:2]
    slots = ref_classes + 1
    stride = K * B * slots
    # (B, H, W) part of the index: image offset and reference slot.
    image_part = reference.masked_fill(~valid, ref_classes)
    image_part += torch.arange(
        B, device=actions.device).mul_(slots).view(B, 1, 1)
    # The one (K, B, H, W) temporary; int64 by type promotion.
    index = torch.add(image_part, actions, alpha=stride)
    index += torch.arange(
        K, device=actions.device).mul_(B * slots).view(K, 1, 1, 1)
    try:
        # Order does not matter to bincount; reshape copies only if the
        # actions had a non-contiguous layout.
        counts = torch.bincount(
            index.reshape(-1), minlength=min_pred_classes * stride)
    except RuntimeError as error:  # a negative index: a negative action
        low = int(actions.min())
        if low < 0:
            raise ValueError(f'action value {low} is negative; actions '
                             'must be class indices') from error
        raise
    pred_classes = -(-counts.numel() // stride)
    if counts.numel() < pred_classes * stride:
        counts = torch.cat(
            [counts,
             counts.new_zeros(pred_classes * stride - counts.numel())])
    return counts.view(pred_classes, K, B, slots)


def _to_confusion(counts: Tensor, num_classes: int) -> Tensor:
    """(P, K, B, R + 1) counts -> (K, B, C, C), ignored pixels dropped."""
    pred_classes, K, B, slots = counts.shape
    counts = counts[..., :slots - 1].permute(1, 2, 3, 0)
    if counts.shape[-2:] == (num_classes, num_classes):
        return counts.contiguous()
    confusion = counts.new_zeros(K, B, num_classes, num_classes)
    confusion[:, :, :slots - 1, :pred_classes] = counts
    return confusion


def per_image_confusion(actions: Tensor,
                        reference: Tensor,
                        num_classes: int,
                        ignore_index: int = 255) -> Tensor:
    """Confusion matrix of every sampled map against its reference.

    All K * B matrices come from one :func:`torch.bincount` over a flat
    int64 index of the pixels, ``pred * S + (k * B + b) * (C + 1) + ref``
    with ``S = K * B * (C + 1)``: the same counts as the index
    ``((k * B + b) * C + ref) * C + pred``, in another order. Ignored
    pixels fall in an extra reference slot ``ref = C`` that is dropped
    afterwards, so nothing is gathered or masked at full size, and the
    index is the only (K, B, H, W) temporary. With the predicted class as
    the most significant digit the actions validate themselves: one
    ``>= C`` shows as an index past ``C * S``, a negative one as a negative
    index, with no extra pass over the actions.

    Args:
        actions (Tensor): Sampled classes of shape (K, B, H, W), integer.
        reference (Tensor): Reference maps of shape (B, H, W), integer.
        num_classes (int): Number of classes C.
        ignore_index (int): Reference value of pixels that are not counted.
            Defaults to 255.

    Returns:
        Tensor: Counts of shape (K, B, C, C), int64; rows are reference
        classes, columns predicted classes.
    """
    _check_actions(actions)
    if not _is_positive_int(num_classes):
        raise ValueError('num_classes must be a positive int, got '
                         f'{num_classes!r}')
    if tuple(reference.shape) != tuple(actions.shape[1:]):
        raise ValueError(f'actions {tuple(actions.shape)} do not match the '
                         f'reference maps {tuple(reference.shape)}')
    num_classes = int(num_classes)
    reference = reference.to(device=actions.device, dtype=torch.long)
    valid = reference != ignore_index
    span = _reference_range(reference, valid)
    if span is not None and (span[0] < 0 or span[1] >= num_classes):
        raise _bad_reference(span[0] if span[0] < 0 else span[1],
                             num_classes)
    counts = _count_pixels(actions, reference, valid, num_classes,
                           num_classes)
    if counts.shape[0] > num_classes:
        raise ValueError(f'action value {counts.shape[0] - 1} is not a '
                         f'class index for num_classes={num_classes}')
    return _to_confusion(counts, num_classes)


def per_image_cell_confusion(cell_actions: Tensor,
                             reference: Tensor,
                             num_classes: Optional[int] = None,
                             ignore_index: int = 255) -> Tensor:
    """Confusion matrices of cell action grids, without upsampling them.

    Exactly :func:`per_image_confusion` of
    ``upsample_actions(cell_actions, reference.shape[-2:])``, computed in
    two small steps: one :func:`torch.bincount` over the B reference maps
    counts the reference classes of every cell (B, cells, C + 1), once per
    step whatever K; then the one-hot (class chosen, cell) matrices of the
    K samples of an image multiply its cell histograms (one batched matmul,
    K x C x cells by cells x (C + 1) per image). No (K, B, H, W) tensor is
    ever built, so scoring K = 32 grids costs about what scoring one
    full-resolution map does.

    Args:
        cell_actions (Tensor): Cell classes (K, B, rows, cols), integer.
        reference (Tensor): Reference maps (B, H, W), integer; H >= rows and
            W >= cols.
        num_classes (int, optional): Number of classes C; None takes
            ``max(actions, valid reference) + 1``. Defaults to None.
        ignore_index (int): Reference value of pixels that are not counted.
            Defaults to 255.

    Returns:
        Tensor: Counts (K, B, C, C), int64; rows are reference classes,
        columns predicted classes.
    """
    _check_actions(cell_actions)
    K, B, rows, cols = cell_actions.shape
    if reference.dim() != 3 or reference.shape[0] != B \
            or reference.shape[1] < rows or reference.shape[2] < cols:
        raise ValueError(f'cell actions {tuple(cell_actions.shape)} do not '
                         'match the reference maps '
                         f'{tuple(reference.shape)} (B, H >= rows, '
                         'W >= cols)')
    device = cell_actions.device
    reference = reference.to(device=device, dtype=torch.long)
    valid = reference != ignore_index
    span = _reference_range(reference, valid)
    low, high = (int(v) for v in torch.aminmax(cell_actions))
    if low < 0:
        raise ValueError(f'action value {low} is negative; actions must '
                         'be class indices')
    if span is not None and span[0] < 0:
        raise _bad_reference(span[0], num_classes)
    if num_classes is None:
        num_classes = max(high + 1, 1 if span is None else span[1] + 1)
    elif span is not None and span[1] >= num_classes:
        raise _bad_reference(span[1], num_classes)
    elif high >= num_classes:
        raise ValueError(f'action value {high} is not a class index for '
                         f'num_classes={num_classes}')
    slots, cells = num_classes + 1, rows * cols
    # reference histogram of every cell, ignored pixels in the last slot
    index = reference.masked_fill(~valid, num_classes)
    index += (pixel_cells((rows, cols), reference.shape[-2:], device) +
              torch.arange(B, device=device).view(B, 1, 1) * cells) * slots
    hist = torch.bincount(
        index.view(-1), minlength=B * cells * slots).view(B, cells, slots)
    # (chosen class, cell) one-hot of every sample times the histograms:
    # one batched matmul per image, exact in floating point (integer counts
    # below 2**24, or 2**53 in float64)
    dtype = torch.float32 if reference[0].numel() < 2**24 else torch.float64
    chosen = torch.zeros(
        B, K, num_classes, cells, dtype=dtype, device=device)
    chosen_index = cell_actions.reshape(K, B, 1, cells).transpose(0, 1)
    chosen.scatter_(2, chosen_index.long(), 1.0)
    confusion = torch.bmm(
        chosen.view(B, K * num_classes, cells), hist.to(dtype))
    confusion = confusion.view(B, K, num_classes, slots)[..., :num_classes]
    # (B, K, pred, ref) -> (K, B, ref, pred)
    return confusion.permute(1, 0, 3, 2).round().long().contiguous()


class _ConfusionReward:
    """Base of the image rewards computed from per-image confusion matrices.

    Subclasses implement :meth:`score`. Scores are 0 for images without any
    non-ignored pixel, which are reported invalid.

    Args:
        ignore_index (int): Reference value of pixels that are not scored.
            Defaults to 255.
        num_classes (int, optional): Number of classes. None infers it per
            call as ``max(actions.max(), valid reference.max()) + 1`` (at
            no extra pass over the actions), which is enough because classes
            absent from both maps score nothing. Giving it checks the values
            of both maps against it. Defaults to None.
    """

    level = 'image'
    needs_inputs = False
    value_range: Optional[Tuple[float, float]] = (0.0, 1.0)

    def __init__(self,
                 ignore_index: int = 255,
                 num_classes: Optional[int] = None) -> None:
        if isinstance(ignore_index, bool) \
                or not isinstance(ignore_index, Integral):
            raise ValueError('ignore_index must be an int, got '
                             f'{ignore_index!r}')
        if num_classes is not None and not _is_positive_int(num_classes):
            raise ValueError('num_classes must be a positive int or None '
                             f'(inferred per call), got {num_classes!r}')
        self.ignore_index = int(ignore_index)
        self.num_classes = None if num_classes is None else int(num_classes)

    def __call__(self,
                 actions: Tensor,
                 data_samples: List[SegDataSample],
                 inputs: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """Score action maps against the references of the data samples.

        Args:
            actions (Tensor): Sampled classes of shape (K, B, H, W), integer.
            data_samples (list[:obj:`SegDataSample`]): The batch, whose
                ``gt_sem_seg.data`` (1, H, W) is the reference.
            inputs (Tensor, optional): Unused; accepted for the common
                image-reward signature.

        Returns:
            tuple[Tensor, Tensor]: Rewards (K, B) float32 and the valid mask
            (B,) bool (images with at least one non-ignored pixel).
        """
        _check_actions(actions)
        reference = stack_gt_sem_seg(data_samples).to(actions.device)
        if tuple(reference.shape) != tuple(actions.shape[1:]):
            raise ValueError(f'actions {tuple(actions.shape)} do not match '
                             f'the reference maps {tuple(reference.shape)}')
        if self.num_classes is not None:
            confusion = per_image_confusion(actions, reference,
                                            self.num_classes,
                                            self.ignore_index)
        else:
            confusion = self._inferred_confusion(actions, reference)
        valid = confusion[0].sum((-2, -1)) > 0
        return self.score(confusion.float()), valid

    def score_cells(
            self, cell_actions: Tensor,
            data_samples: List[SegDataSample]) -> Tuple[Tensor, Tensor]:
        """Score cell action grids as their nearest-upsampled action maps.

        The same rewards as ``self(upsample_actions(cell_actions, (H, W)),
        data_samples)`` from :func:`per_image_cell_confusion`, without the
        (K, B, H, W) maps. :class:`~rss_mmseg.models.heads.RSSHead` calls it
        on PSR grids when the reward has it.

        Args:
            cell_actions (Tensor): Cell classes (K, B, rows, cols), integer.
            data_samples (list[:obj:`SegDataSample`]): The batch.

        Returns:
            tuple[Tensor, Tensor]: Rewards (K, B) float32, valid (B,) bool.
        """
        reference = stack_gt_sem_seg(data_samples).to(cell_actions.device)
        confusion = per_image_cell_confusion(cell_actions, reference,
                                             self.num_classes,
                                             self.ignore_index)
        valid = confusion[0].sum((-2, -1)) > 0
        return self.score(confusion.float()), valid

    def _inferred_confusion(self, actions: Tensor,
                            reference: Tensor) -> Tensor:
        """Confusion matrices with C = max(actions, reference) + 1.

        The reference bounds the reference slots; the actions need no pass
        of their own, since the bincount's length gives their maximum.
        """
        reference = reference.long()
        valid = reference != self.ignore_index
        span = _reference_range(reference, valid)
        if span is not None and span[0] < 0:
            raise _bad_reference(span[0], None)
        ref_classes = 1 if span is None else span[1] + 1
        counts = _count_pixels(actions, reference, valid, ref_classes, 1)
        return _to_confusion(counts, max(ref_classes, counts.shape[0]))

    def score(self, confusion: Tensor) -> Tensor:
        """Map float confusion matrices (K, B, C, C) to scores (K, B)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(ignore_index={self.ignore_index}'
                f', num_classes={self.num_classes})')


def _class_terms(confusion: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    """True positives, reference and predicted counts per class (K, B, C)."""
    true_pos = confusion.diagonal(dim1=-2, dim2=-1)
    return true_pos, confusion.sum(-1), confusion.sum(-2)


def _mean_over_present(per_class: Tensor, present: Tensor) -> Tensor:
    """Mean of ``per_class`` (K, B, C) over the present classes; 0 if none."""
    total = (per_class * present).sum(-1)
    return total / present.sum(-1).clamp_(min=1)


@MODELS.register_module()
class ImageMIoUReward(_ConfusionReward):
    """Per-image mean IoU of each sampled map against the reference.

    The mean runs over the classes present in the reference or the sampled
    map (union > 0), both counted on non-ignored pixels only, so predicting
    a class the image does not contain lowers the reward.

    ``classes='reference'`` averages over the classes of the reference only.
    A false positive of a class the image lacks then costs only the pixels
    it takes from the true class, instead of adding a zero-IoU class to the
    mean: under ``'union'`` one sampled cell of an absent class costs about
    ``R / (n + 1)`` of the reward however small the cell, which teaches a
    policy early on never to try small classes (docs/method.md section 12).

    Args:
        ignore_index (int): Reference value of pixels that are not scored.
            Defaults to 255.
        num_classes (int, optional): Number of classes; None infers it per
            call. Defaults to None.
        classes (str): Classes the mean runs over: ``'union'`` (present in
            the reference or the sampled map) or ``'reference'`` (present in
            the reference). Defaults to ``'union'``.
    """

    CLASS_SETS = ('union', 'reference')

    def __init__(self,
                 ignore_index: int = 255,
                 num_classes: Optional[int] = None,
                 classes: str = 'union') -> None:
        super().__init__(ignore_index=ignore_index, num_classes=num_classes)
        if classes not in self.CLASS_SETS:
            raise ValueError(f'ImageMIoUReward: classes must be one of '
                             f'{self.CLASS_SETS}, got {classes!r}')
        self.classes = classes

    def score(self, confusion: Tensor) -> Tensor:
        true_pos, ref_count, pred_count = _class_terms(confusion)
        union = ref_count + pred_count - true_pos
        present = union > 0 if self.classes == 'union' else ref_count > 0
        return _mean_over_present(true_pos / union.clamp(min=1), present)

    def __repr__(self) -> str:
        return f'{super().__repr__()[:-1]}, classes={self.classes!r})'


@MODELS.register_module()
class ImageAccuracyReward(_ConfusionReward):
    """Per-image pixel accuracy over the non-ignored pixels.

    Args:
        ignore_index (int): Reference value of pixels that are not scored.
            Defaults to 255.
        num_classes (int, optional): Number of classes; None infers it per
            call. Defaults to None.
    """

    def score(self, confusion: Tensor) -> Tensor:
        correct = confusion.diagonal(dim1=-2, dim2=-1).sum(-1)
        return correct / confusion.sum((-2, -1)).clamp(min=1)


@MODELS.register_module()
class ImageDiceReward(_ConfusionReward):
    """Per-image mean Dice (F1), ``2 TP / (2 TP + FP + FN)`` per class.

    The mean runs over the classes present in the reference or the sampled
    map, counted on non-ignored pixels only.

    Args:
        ignore_index (int): Reference value of pixels that are not scored.
            Defaults to 255.
        num_classes (int, optional): Number of classes; None infers it per
            call. Defaults to None.
    """

    def score(self, confusion: Tensor) -> Tensor:
        true_pos, ref_count, pred_count = _class_terms(confusion)
        total = ref_count + pred_count  # 2 TP + FP + FN
        present = total > 0
        return _mean_over_present(2 * true_pos / total.clamp(min=1), present)
