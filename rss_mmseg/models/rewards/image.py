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

from ...evaluation.functional import boundary_band
from ...utils import counting
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
    if counting.reads_are_free(actions.device) and not bool(bad):
        return actions
    return actions.clamp(0, num_classes - 1)


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
    counts = counting.histogram(index.reshape(-1), num_classes * stride)
    return counts.view(num_classes, K, B, slots)


def _to_confusion(counts: Tensor) -> Tensor:
    """(C, K, B, C + 1) counts -> (K, B, C, C), ignored pixels dropped."""
    return counts[..., :-1].permute(1, 2, 3, 0).contiguous()


def _checked_inputs(
        actions: Tensor, reference: Tensor, num_classes: Optional[int],
        ignore_index: int,
        checks: RewardChecks) -> Tuple[Tensor, Tensor, Tensor, int]:
    """Actions and reference with their values checked (noted in
    ``checks``): the actions clamped into [0, C), the reference as long on
    their device, its valid mask (non-ignored class indices) and C,
    inferred from the data when ``num_classes`` is None."""
    reference = reference.to(device=actions.device, dtype=torch.long)
    valid = reference != ignore_index
    if num_classes is None:
        num_classes = _infer_num_classes(actions, reference, valid)
    valid = _check_reference(reference, valid, num_classes, ignore_index,
                             checks)
    actions = _check_action_values(actions, num_classes, checks)
    return actions, reference, valid, num_classes


def _confusion(actions: Tensor, reference: Tensor, num_classes: Optional[int],
               ignore_index: int, checks: RewardChecks) -> Tensor:
    """Confusion matrices (K, B, C, C) with value checks noted in
    ``checks``; C inferred from the data when ``num_classes`` is None."""
    actions, reference, valid, num_classes = _checked_inputs(
        actions, reference, num_classes, ignore_index, checks)
    return _to_confusion(
        _count_pixels(actions, reference, valid, num_classes))


def _check_grid_fits(cell_actions: Tensor, reference: Tensor) -> None:
    """Refuse cell grids (K, B, rows, cols) finer than, or of another batch
    than, the reference maps (B, H, W)."""
    B, rows, cols = cell_actions.shape[1:]
    if reference.dim() != 3 or reference.shape[0] != B \
            or reference.shape[1] < rows or reference.shape[2] < cols:
        raise ValueError(f'cell actions {tuple(cell_actions.shape)} do not '
                         'match the reference maps '
                         f'{tuple(reference.shape)} (B, H >= rows, '
                         'W >= cols)')


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
    _check_grid_fits(cell_actions, reference)
    hist, cell_actions, num_classes = _cell_histograms(
        cell_actions, reference, num_classes, ignore_index)
    return _cell_confusion(cell_actions, hist, num_classes,
                           reference[0].numel())


def _cell_histograms(cell_actions: Tensor, reference: Tensor,
                     num_classes: Optional[int],
                     ignore_index: int) -> Tuple[Tensor, Tensor, int]:
    """Reference histogram of every cell (B, cells, C + 1), ignored pixels
    in the last slot; the checked cell actions and the number of classes."""
    K, B, rows, cols = cell_actions.shape
    device = cell_actions.device
    with checking() as checks:
        cell_actions, reference, valid, num_classes = _checked_inputs(
            cell_actions, reference, _num_classes(num_classes, checks),
            ignore_index, checks)
    slots, cells = num_classes + 1, rows * cols
    index = reference.masked_fill(~valid, num_classes)
    index += (pixel_cells((rows, cols), reference.shape[-2:], device) +
              torch.arange(B, device=device).view(B, 1, 1) * cells) * slots
    hist = counting.histogram(index.view(-1), B * cells * slots).view(
        B, cells, slots)
    return hist, cell_actions, num_classes


def _cell_confusion(cell_actions: Tensor, hist: Tensor, num_classes: int,
                    image_pixels: int) -> Tensor:
    """Confusion (K, B, C, C) of cell grids from their cell histograms."""
    K, B = cell_actions.shape[:2]
    cells, slots = hist.shape[1:]
    # (chosen class, cell) one-hot of every sample times the histograms:
    # one batched matmul per image, exact in floating point (integer counts
    # below 2**24, or 2**53 in float64)
    dtype = torch.float32 if image_pixels < 2**24 else torch.float64
    chosen = torch.zeros(
        B, K, num_classes, cells, dtype=dtype, device=hist.device)
    chosen_index = cell_actions.reshape(K, B, 1, cells).transpose(0, 1)
    chosen.scatter_(2, chosen_index.long(), 1.0)
    confusion = torch.bmm(
        chosen.view(B, K * num_classes, cells), hist.to(dtype))
    confusion = confusion.view(B, K, num_classes, slots)[..., :num_classes]
    # (B, K, pred, ref) -> (K, B, ref, pred)
    return confusion.permute(1, 0, 3, 2).round().long().contiguous()


def _pool(confusion: Tensor, pooled: bool) -> Tensor:
    """Confusion (K, B, C, C), each image's or the batch's sum."""
    if pooled:
        return confusion.sum(1, keepdim=True).expand_as(confusion)
    return confusion


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
        band (int, optional): Score only the reference pixels within
            ``band`` pixels of a reference class boundary (found as
            ``BoundaryFScoreMetric`` finds them); the others count as
            ignored. The score then measures how the map runs along the
            reference's outlines, and stays a confusion score, so one-cell
            variants are still exact. Images without a boundary are
            invalid. None scores every pixel. Defaults to None.
    """

    level = 'image'
    needs_inputs = False
    value_range: Optional[Tuple[float, float]] = (0.0, 1.0)

    def __init__(self,
                 ignore_index: int = 255,
                 num_classes: Optional[int] = None,
                 band: Optional[int] = None) -> None:
        if isinstance(ignore_index, bool) \
                or not isinstance(ignore_index, Integral):
            raise ValueError('ignore_index must be an int, got '
                             f'{ignore_index!r}')
        if num_classes is not None and not _is_positive_int(num_classes):
            raise ValueError('num_classes must be a positive int or None '
                             f'(inferred per call), got {num_classes!r}')
        if band is not None and (isinstance(band, bool)
                                 or not isinstance(band, Integral)
                                 or band < 0):
            raise ValueError(f'{type(self).__name__}: band must be an int '
                             '>= 0 (pixels from a reference boundary) or '
                             f'None (every pixel), got {band!r}')
        self.ignore_index = int(ignore_index)
        self.num_classes = None if num_classes is None else int(num_classes)
        self.band = None if band is None else int(band)

    def _reference(self, data_samples: List[SegDataSample],
                   device: torch.device) -> Tensor:
        """The batch's reference maps (B, H, W) on ``device``; with
        ``band``, the pixels outside the boundary band set to ignored."""
        reference = stack_gt_sem_seg(data_samples).to(device)
        if self.band is None:
            return reference
        inside = boundary_band(reference, self.band, self.ignore_index)
        return reference.masked_fill(~inside, self.ignore_index)

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
        reference = self._reference(data_samples, actions.device)
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
        reference = self._reference(data_samples, cell_actions.device)
        confusion = per_image_cell_confusion(cell_actions, reference,
                                             self.num_classes,
                                             self.ignore_index)
        valid = confusion[0].sum((-2, -1)) > 0
        return self.score(confusion.float()), valid

    def score_cell_variants(self,
                            cell_actions: Tensor,
                            data_samples: List[SegDataSample],
                            pooled: bool = False
                            ) -> Tuple[Tensor, Tensor, Tensor]:
        """Score cell grids and every grid that differs from one in a cell.

        For sample k, image b, class c and cell i, the gain
        ``R(a_k with cell i set to c) - R(a_k)``: the rewards of K * cells *
        C one-cell variants, exactly and without scoring them one by one
        (only the two classes a cell moves between change their counts).
        Used by :class:`~rss_mmseg.models.losses.LocalExpectationLoss`.
        With ``cell_actions`` at the reference's size every pixel is a
        cell, and a pixel's gains depend only on its own, its reference and
        the new class: they are read from a (C, 2, C, 2) table per sample.

        Args:
            cell_actions (Tensor): Cell classes (K, B, rows, cols), integer.
            data_samples (list[:obj:`SegDataSample`]): The batch.
            pooled (bool): Gains of the score of the batch's pooled
                confusion (the B images' counts summed, sample k of every
                image together) instead of the image's own: a class then
                weighs by its pixels over the batch, as in the dataset
                mIoU that validation reports, not by its presence in each
                image. Defaults to False.

        Returns:
            tuple[Tensor, Tensor, Tensor]: Rewards (K, B) float32 (each
            image's own), valid (B,) bool, and the gains
            (K, B, C, rows, cols) float32 (0 where c is the cell's own
            class, and on ignored pixels).
        """
        _check_actions(cell_actions)
        K, B, rows, cols = cell_actions.shape
        reference = self._reference(data_samples, cell_actions.device)
        _check_grid_fits(cell_actions, reference)
        if tuple(reference.shape[1:]) == (rows, cols):
            with checking() as checks:
                actions, reference, valid, num_classes = _checked_inputs(
                    cell_actions, reference,
                    _num_classes(self.num_classes, checks),
                    self.ignore_index, checks)
            actions = actions.long()
            confusion = _to_confusion(
                _count_pixels(actions, reference, valid,
                              num_classes)).float()
            labels = reference.masked_fill(~valid, num_classes)
            gains = self.pixel_variant_gains(_pool(confusion, pooled),
                                             actions.flatten(2),
                                             labels.flatten(1))
        else:
            hist, actions, num_classes = _cell_histograms(
                cell_actions, reference, self.num_classes,
                self.ignore_index)
            confusion = _cell_confusion(actions, hist, num_classes,
                                        reference[0].numel()).float()
            gains = self.variant_gains(_pool(confusion, pooled),
                                       actions.flatten(2).long(),
                                       hist[..., :num_classes].float())
        valid = confusion[0].sum((-2, -1)) > 0
        gains = gains.view(K, B, num_classes, rows, cols)
        return self.score(confusion), valid, gains

    def _move_terms(self, confusion: Tensor, hits: Tensor, size: Tensor,
                    own: Optional[Tensor]) -> Tuple[Tensor, ...]:
        """Changes of the class-mean's sum and count when cells move.

        ``hits`` and ``size`` (broadcast against (K, B, ..., C)) are the
        reference pixels of each class in the moved cells and their valid
        pixels. Returns, per class, the changes ``(dT, dN)`` when the cells
        leave the class (gathered at ``own`` if given) and when they join
        it, and the current ``(T, N)`` (K, B, 1, 1).
        """
        true_pos, ref_count, pred_count = _class_terms(confusion)
        term, present = self.class_scores(true_pos, ref_count, pred_count)
        present = present.to(term.dtype)
        now = term * present
        shape = (true_pos.shape[0], true_pos.shape[1]) + (1, ) * (
            hits.dim() - 3)
        grow = lambda x: x.view(*shape, x.shape[-1])  # noqa: E731
        if own is None:
            pick, lost_hits = grow, hits
        else:
            pick = lambda x: x.gather(  # noqa: E731
                -1, own.squeeze(-1)).unsqueeze(-1)
            lost_hits = hits.gather(-1, own)
        term_l, present_l = self.class_scores(
            pick(true_pos) - lost_hits, pick(ref_count),
            pick(pred_count) - size)
        leave = (term_l * present_l - pick(now),
                 present_l.to(term.dtype) - pick(present))
        term_j, present_j = self.class_scores(
            grow(true_pos) + hits, grow(ref_count), grow(pred_count) + size)
        join = (term_j * present_j - grow(now),
                present_j.to(term.dtype) - grow(present))
        total = now.sum(-1).view(shape + (1, ))
        count = present.sum(-1).view(shape + (1, ))
        return leave, join, (total, count)

    @staticmethod
    def _mean_change(d_total: Tensor, d_count: Tensor, total: Tensor,
                     count: Tensor) -> Tensor:
        """``(T + dT) / max(N + dN, 1) - T / max(N, 1)``, without cancelling
        when ``dN = 0``."""
        old = count.clamp(min=1)
        new = (count + d_count).clamp(min=1)
        return (d_total * old - total * (new - old)) / (new * old)

    def variant_gains(self, confusion: Tensor, actions: Tensor,
                      counts: Tensor) -> Tensor:
        """Gains (K, B, C, cells) of the one-cell variants of cell grids.

        The default serves rewards that are a mean of per-class terms over
        the present classes (:meth:`class_scores`): moving cell i from
        class a to class c changes the terms of a and c only.

        Args:
            confusion (Tensor): Float confusion (K, B, C, C) of the samples.
            actions (Tensor): Their cell classes (K, B, cells), long.
            counts (Tensor): Reference class counts per cell (B, cells, C),
                float (ignored pixels not counted).
        """
        K = actions.shape[0]
        own = actions.unsqueeze(-1)  # (K, B, cells, 1)
        hits = counts.unsqueeze(0)  # (1, B, cells, C)
        size = hits.sum(-1, keepdim=True)
        leave, join, (total, count) = self._move_terms(
            confusion, hits.expand(K, -1, -1, -1), size, own)
        gains = self._mean_change(leave[0] + join[0], leave[1] + join[1],
                                  total, count)
        classes = torch.arange(gains.shape[-1], device=gains.device)
        return gains.masked_fill(classes == own, 0.0).transpose(2, 3)

    def pixel_variant_gains(self, confusion: Tensor, actions: Tensor,
                            labels: Tensor) -> Tensor:
        """Gains (K, B, C, pixels) when every cell is one pixel.

        A pixel moving from class a to c changes the class mean by an
        amount that depends only on ``(a, a == y, c, c == y)``, y its
        reference: a (C, 2, C, 2) table per sample and image, read with
        one gather per pixel and class.

        Args:
            confusion (Tensor): Float confusion (K, B, C, C) of the samples.
            actions (Tensor): Their classes (K, B, pixels), long.
            labels (Tensor): Reference classes (B, pixels), long, C where
                ignored.
        """
        K, B, pixels = actions.shape
        C = confusion.shape[-1]
        hit = torch.arange(2, dtype=confusion.dtype, device=confusion.device)
        # leave/join terms per (hit, class), then (K, B, C, 2)
        leave, join, (total, count) = self._move_terms(
            confusion, hit.view(1, 1, 2, 1), torch.ones((), device=hit.device),
            None)
        leave = [x.expand(K, B, 2, C).transpose(-1, -2) for x in leave]
        join = [x.expand(K, B, 2, C).transpose(-1, -2) for x in join]
        total, count = total.view(K, B, 1, 1), count.view(K, B, 1, 1)
        # table[k, b, c, h_c, a * 2 + h_a]
        d_total = leave[0].reshape(K, B, 1, 1, 2 * C) + join[0].view(
            K, B, C, 2, 1)
        d_count = leave[1].reshape(K, B, 1, 1, 2 * C) + join[1].view(
            K, B, C, 2, 1)
        table = self._mean_change(d_total, d_count, total.unsqueeze(-1),
                                  count.unsqueeze(-1))
        # a zero entry at a * 2 + h_a = 2C, read by the ignored pixels: their
        # gains come out 0 without a pass over (K, B, C, pixels) to mask them
        table = torch.cat([table, table.new_zeros(K, B, C, 2, 1)], -1)
        width = 2 * C + 1
        row = actions * 2 + (actions == labels).long()  # (K, B, pixels)
        row.masked_fill_(labels >= C, 2 * C)
        # every class c as a miss (h_c = 0) ...
        gains = table[:, :, :, 0].gather(
            -1, row.unsqueeze(2).expand(K, B, C, pixels))
        # ... except the reference class, a hit
        label = labels.clamp(max=C - 1).expand(K, B, pixels)
        on_label = table[:, :, :, 1].flatten(2).gather(
            -1, label * width + row)
        gains.scatter_(2, label.unsqueeze(2), on_label.unsqueeze(2))
        own = actions.unsqueeze(2)
        return gains.scatter_(2, own, 0.0)

    def class_scores(self, true_pos: Tensor, ref_count: Tensor,
                     pred_count: Tensor) -> Tuple[Tensor, Tensor]:
        """Per-class terms and the classes the mean runs over (bool)."""
        raise NotImplementedError(
            f'{type(self).__name__} is not a mean of per-class terms: it '
            'defines its own score and cannot score one-cell variants. Fix: '
            'use PSDLoss or PSRRewardLoss with this reward')

    def score(self, confusion: Tensor) -> Tensor:
        """Map float confusion matrices (K, B, C, C) to scores (K, B): by
        default the mean of :meth:`class_scores` over the present
        classes."""
        return _mean_over_present(*self.class_scores(*_class_terms(confusion)))

    def __repr__(self) -> str:
        band = '' if self.band is None else f', band={self.band}'
        return (f'{self.__class__.__name__}(ignore_index={self.ignore_index}'
                f', num_classes={self.num_classes}{band})')


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
        band (int, optional): Score only the reference pixels within
            ``band`` pixels of a reference class boundary (a boundary
            reward with exact one-cell variants); None scores every pixel.
            Defaults to None.
    """

    CLASS_SETS = ('union', 'reference')

    def __init__(self,
                 ignore_index: int = 255,
                 num_classes: Optional[int] = None,
                 classes: str = 'union',
                 band: Optional[int] = None) -> None:
        super().__init__(
            ignore_index=ignore_index, num_classes=num_classes, band=band)
        if classes not in self.CLASS_SETS:
            raise ValueError(f'ImageMIoUReward: classes must be one of '
                             f'{self.CLASS_SETS}, got {classes!r}')
        self.classes = classes

    def class_scores(self, true_pos: Tensor, ref_count: Tensor,
                     pred_count: Tensor) -> Tuple[Tensor, Tensor]:
        union = ref_count + pred_count - true_pos
        present = union > 0 if self.classes == 'union' else ref_count > 0
        return true_pos / union.clamp(min=1), present

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
        band (int, optional): Score only the reference pixels within
            ``band`` pixels of a reference class boundary (a boundary
            reward with exact one-cell variants); None scores every pixel.
            Defaults to None.
    """

    def score(self, confusion: Tensor) -> Tensor:
        correct = confusion.diagonal(dim1=-2, dim2=-1).sum(-1)
        return correct / confusion.sum((-2, -1)).clamp(min=1)

    def variant_gains(self, confusion: Tensor, actions: Tensor,
                      counts: Tensor) -> Tensor:
        """A cell moved from class a to c gains ``(n_c - n_a) / pixels``."""
        pixels = confusion.sum((-2, -1)).clamp(min=1)[..., None, None]
        hits_own = counts.expand(actions.shape[0], -1, -1, -1).gather(
            -1, actions.unsqueeze(-1))
        return ((counts.unsqueeze(0) - hits_own) / pixels).transpose(2, 3)

    def pixel_variant_gains(self, confusion: Tensor, actions: Tensor,
                            labels: Tensor) -> Tensor:
        """A pixel moved from a to c gains ``([c = y] - [a = y]) / pixels``."""
        K, B, pixels = actions.shape
        C = confusion.shape[-1]
        total = confusion.sum((-2, -1)).clamp(min=1).view(K, B, 1, 1)
        valid = (labels < C).to(confusion.dtype)
        onehot = torch.zeros(B, C + 1, pixels, device=labels.device)
        onehot.scatter_(1, labels.unsqueeze(1), 1.0)
        hit = (actions == labels).to(confusion.dtype).unsqueeze(2)
        return (onehot[:, :C].unsqueeze(0) - hit) * valid.view(
            1, B, 1, pixels) / total


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
        band (int, optional): Score only the reference pixels within
            ``band`` pixels of a reference class boundary (a boundary
            reward with exact one-cell variants); None scores every pixel.
            Defaults to None.
    """

    def class_scores(self, true_pos: Tensor, ref_count: Tensor,
                     pred_count: Tensor) -> Tuple[Tensor, Tensor]:
        total = ref_count + pred_count  # 2 TP + FP + FN
        return 2 * true_pos / total.clamp(min=1), total > 0


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
        band (int, optional): Score only the reference pixels within
            ``band`` pixels of a reference class boundary (a boundary
            reward with exact one-cell variants); None scores every pixel.
            Defaults to None.
    """

    def class_scores(self, true_pos: Tensor, ref_count: Tensor,
                     pred_count: Tensor) -> Tuple[Tensor, Tensor]:
        return true_pos / ref_count.clamp(min=1), ref_count > 0
