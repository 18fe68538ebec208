"""Image-level rewards: one score per sampled action map and image.

Every reward here is a function of the per-image confusion matrix of a
sampled map against the hidden reference, so all K samples and B images are
counted by one histogram (:func:`per_image_confusion`) and scored by a few
operations on the small (K, B, C, C) result.

Inside an :class:`~rss_mmseg.models.heads.RSSHead` nothing here reads a
tensor value on the host (no host-device sync): the number of classes is
the head's when the reward has none, the histogram has a known length, and
reference or action values that are not class indices are noted in the
head's :class:`~rss_mmseg.models.rewards.checks.RewardChecks` (and counted
as ignored, or as the last class) instead of raising at once.
"""
from numbers import Integral
from typing import List, Optional, Tuple

import torch
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from torch import Tensor

from ..policy import pixel_cells
from .checks import RewardChecks, checking
from .pixel import stack_gt_sem_seg

__all__ = [
    'per_image_confusion', 'per_image_cell_confusion', 'ImageMIoUReward',
    'ImageAccuracyReward', 'ImageDiceReward', 'ImageRecallReward'
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


def _reads_are_free(device: torch.device) -> bool:
    """Whether reading tensor values on the host costs no device sync.

    True for CPU tensors: there the data-dependent shortcuts (a bincount
    sized by its input, clamping only what needs it) are free; on an
    accelerator every value check stays on the device.
    """
    return device.type == 'cpu'


def _describe_reference(num_classes: int, ignore_index: int):

    def describe(low: float, high: float) -> str:
        value, bound = (int(low), 'is negative') if low < 0 else (
            int(high), f'is not a class index for num_classes={num_classes}')
        return (f'reference value {value} {bound} (nor the ignore_index '
                f'{ignore_index}); check ignore_index and num_classes')

    return describe


def _describe_action(num_classes: int):

    def describe(low: float, high: float) -> str:
        if low < 0:
            return (f'action value {int(low)} is negative; actions must be '
                    'class indices')
        return (f'action value {int(high)} is not a class index for '
                f'num_classes={num_classes}')

    return describe


def _check_reference(reference: Tensor, valid: Tensor, num_classes: int,
                     ignore_index: int, checks: RewardChecks) -> Tensor:
    """Note non-ignored reference values outside [0, C); the valid mask
    without them (they are counted as ignored)."""
    low, high = torch.aminmax(reference.masked_fill(~valid, 0))
    checks.note('reference', (low < 0) | (high >= num_classes), low, high,
                _describe_reference(num_classes, ignore_index),
                ('reference', num_classes, ignore_index))
    return valid & (reference >= 0) & (reference < num_classes)


def _check_action_values(actions: Tensor, num_classes: int,
                         checks: RewardChecks) -> Tensor:
    """Note action values outside [0, C); the actions clamped into it."""
    low, high = torch.aminmax(actions)
    bad = (low < 0) | (high >= num_classes)
    checks.note('action', bad, low, high, _describe_action(num_classes),
                ('action', num_classes))
    if _reads_are_free(actions.device) and not bool(bad):
        return actions
    return actions.clamp(0, num_classes - 1)


def _histogram(index: Tensor, length: int) -> Tensor:
    """Counts of each value of a 1-D ``index`` known to lie in
    [0, length), exactly ``length`` of them, int64.

    ``torch.bincount`` on CUDA reads the input's maximum and minimum on the
    host to size its output: a sync. ``index_add_`` into a buffer of the
    known length does not (and is deterministic for integer counts).
    """
    if _reads_are_free(index.device):
        return torch.bincount(index, minlength=length)
    one = torch.ones((), dtype=torch.long, device=index.device)
    return torch.zeros(
        length, dtype=torch.long, device=index.device).index_add_(
            0, index, one.expand(index.numel()))


def _infer_num_classes(actions: Tensor, reference: Tensor,
                       valid: Tensor) -> int:
    """``max(actions, valid reference) + 1``: reads values on the host, so
    only for rewards called without a number of classes (never by
    :class:`~rss_mmseg.models.heads.RSSHead`, which provides its own)."""
    high = max(int(actions.max()),
               int(reference.masked_fill(~valid, 0).max()))
    return max(high + 1, 1)


def _num_classes(num_classes: Optional[int],
                 checks: Optional[RewardChecks]) -> Optional[int]:
    """The given number of classes, else the active record's, else None."""
    if num_classes is None and checks is not None:
        return checks.num_classes
    return num_classes


def _count_pixels(actions: Tensor, reference: Tensor, valid: Tensor,
                  num_classes: int) -> Tensor:
    """Counts of shape (C, K, B, C + 1) from one histogram.

    The flat index is ``pred * S + (k * B + b) * (C + 1) + ref`` with
    ``S = K * B * (C + 1)``; ignored pixels use the last reference slot.
    The actions and the reference must already lie in [0, C).
    """
    K, B = actions.shape[:2]
    slots = num_classes + 1
    stride = K * B * slots
    # (B, H, W) part of the index: image offset and reference slot.
    image_part = reference.masked_fill(~valid, num_classes)
    image_part += torch.arange(
        B, device=actions.device).mul_(slots).view(B, 1, 1)
    # The one (K, B, H, W) temporary; int64 by type promotion.
    index = torch.add(image_part, actions, alpha=stride)
    index += torch.arange(
        K, device=actions.device).mul_(B * slots).view(K, 1, 1, 1)
    # Order does not matter to a histogram; reshape copies only if the
    # actions had a non-contiguous layout.
    counts = _histogram(index.reshape(-1), num_classes * stride)
    return counts.view(num_classes, K, B, slots)


def _to_confusion(counts: Tensor) -> Tensor:
    """(C, K, B, C + 1) counts -> (K, B, C, C), ignored pixels dropped."""
    return counts[..., :-1].permute(1, 2, 3, 0).contiguous()


def _confusion(actions: Tensor, reference: Tensor, num_classes: Optional[int],
               ignore_index: int, checks: RewardChecks) -> Tensor:
    """Confusion matrices (K, B, C, C) with value checks noted in
    ``checks``; C inferred from the data when ``num_classes`` is None."""
    reference = reference.to(device=actions.device, dtype=torch.long)
    valid = reference != ignore_index
    if num_classes is None:
        num_classes = _infer_num_classes(actions, reference, valid)
    valid = _check_reference(reference, valid, num_classes, ignore_index,
                             checks)
    actions = _check_action_values(actions, num_classes, checks)
    return _to_confusion(
        _count_pixels(actions, reference, valid, num_classes))


def per_image_confusion(actions: Tensor,
                        reference: Tensor,
                        num_classes: int,
                        ignore_index: int = 255) -> Tensor:
    """Confusion matrix of every sampled map against its reference.

    All K * B matrices come from one histogram (:func:`torch.bincount` on
    CPU) over a flat int64 index of the pixels,
    ``pred * S + (k * B + b) * (C + 1) + ref`` with ``S = K * B * (C + 1)``:
    the same counts as the index ``((k * B + b) * C + ref) * C + pred``, in
    another order. Ignored pixels fall in an extra reference slot
    ``ref = C`` that is dropped afterwards, so nothing is gathered or
    masked at full size, and the index is the only (K, B, H, W) temporary.

    Values are checked without reading them on the host: inside an
    :class:`~rss_mmseg.models.heads.RSSHead` (an active
    :class:`~rss_mmseg.models.rewards.checks.RewardChecks`) an action or a
    non-ignored reference value outside [0, C) is noted there (the head
    raises at its next check and gives the batch no gradient) and counted
    as class C - 1 or as ignored; called on its own, it raises a
    ``ValueError`` here.

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
    with checking() as checks:
        return _confusion(actions, reference, int(num_classes), ignore_index,
                          checks)


def per_image_cell_confusion(cell_actions: Tensor,
                             reference: Tensor,
                             num_classes: Optional[int] = None,
                             ignore_index: int = 255) -> Tensor:
    """Confusion matrices of cell action grids, without upsampling them.

    Exactly :func:`per_image_confusion` of
    ``upsample_actions(cell_actions, reference.shape[-2:])``, computed in
    two small steps: one histogram over the B reference maps counts the
    reference classes of every cell (B, cells, C + 1), once per step
    whatever K; then the one-hot (class chosen, cell) matrices of the K
    samples of an image multiply its cell histograms (one batched matmul,
    K x C x cells by cells x (C + 1) per image). No (K, B, H, W) tensor is
    ever built, so scoring K = 32 grids costs about what scoring one
    full-resolution map does. Values are checked as by
    :func:`per_image_confusion`.

    Args:
        cell_actions (Tensor): Cell classes (K, B, rows, cols), integer.
        reference (Tensor): Reference maps (B, H, W), integer; H >= rows and
            W >= cols.
        num_classes (int, optional): Number of classes C; None takes the
            active record's (inside an RSSHead: the head's), else
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
    with checking() as checks:
        num_classes = _num_classes(num_classes, checks)
        if num_classes is None:
            num_classes = _infer_num_classes(cell_actions, reference, valid)
        valid = _check_reference(reference, valid, num_classes, ignore_index,
                                 checks)
        cell_actions = _check_action_values(cell_actions, num_classes,
                                            checks)
    slots, cells = num_classes + 1, rows * cols
    # reference histogram of every cell, ignored pixels in the last slot
    index = reference.masked_fill(~valid, num_classes)
    index += (pixel_cells((rows, cols), reference.shape[-2:], device) +
              torch.arange(B, device=device).view(B, 1, 1) * cells) * slots
    hist = _histogram(index.view(-1), B * cells * slots).view(B, cells, slots)
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
        num_classes (int, optional): Number of classes. None takes the
            head's inside an :class:`~rss_mmseg.models.heads.RSSHead`
            (non-ignored reference values must then be class indices of
            the head) and otherwise infers it per call as
            ``max(actions.max(), valid reference.max()) + 1``, which reads
            values on the host; either is enough because classes absent
            from both maps score nothing. Giving it checks the values of
            both maps against it. Defaults to None.
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
        with checking() as checks:
            confusion = _confusion(actions, reference,
                                   _num_classes(self.num_classes, checks),
                                   self.ignore_index, checks)
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


@MODELS.register_module()
class ImageRecallReward(_ConfusionReward):
    """Per-image mean recall of the reference's classes, ``TP / |class|``.

    Each class present in the reference counts equally, however few pixels
    it has, so a sample that finds a small class (a pole, a pedestrian) is
    rewarded as much as one that finds the road; false positives cost only
    through the pixels they take from the true classes. Useful beside an
    mIoU reward (:class:`WeightedSumReward`) to keep small classes alive.

    Args:
        ignore_index (int): Reference value of pixels that are not scored.
            Defaults to 255.
        num_classes (int, optional): Number of classes; None infers it per
            call. Defaults to None.
    """

    def score(self, confusion: Tensor) -> Tensor:
        true_pos, ref_count, _ = _class_terms(confusion)
        return _mean_over_present(true_pos / ref_count.clamp(min=1),
                                  ref_count > 0)
