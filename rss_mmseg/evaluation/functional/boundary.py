"""Boundary matching of label maps: the counts behind boundary F-scores.

A pixel is a *boundary pixel of class c* when its label is ``c`` and one of
its 4-neighbours inside the image has another label. A predicted boundary
pixel of class ``c`` is *matched* when a reference boundary pixel of the
same class lies within ``tolerance`` pixels (Euclidean distance), and the
other way round for reference boundary pixels. Precision is the matched
share of the predicted boundary, recall that of the reference boundary
(Csurka et al., BMVC 2013; Perazzi et al., CVPR 2016, per class).

Everything is computed on whole batches of maps at once: the class of
every boundary pixel is a bit of an integer word (the narrowest dtype that
holds the classes; int64 words of 63 classes beyond 31), the
neighbourhood of radius ``tolerance`` is the OR of a few shifted copies of
those words (one per offset of the disc, 29 for ``tolerance=3``), and the
per-class counts are two :meth:`torch.Tensor.scatter_add_`. No one-hot (N, C, H, W)
tensor is built, so scoring 32 sampled maps of 8 images costs a few
full-resolution passes.
"""
import math
from typing import List, Tuple

import torch
from torch import Tensor

from ...utils import counting

__all__ = [
    'boundary_mask', 'disc_offsets', 'boundary_match_counts',
    'boundary_fscore', 'boundary_band'
]



def disc_offsets(tolerance: int) -> List[Tuple[int, int]]:
    """The (dy, dx) offsets within Euclidean distance ``tolerance``."""
    if isinstance(tolerance, bool) or not isinstance(tolerance, int) \
            or tolerance < 0:
        raise ValueError('tolerance must be an int >= 0 (pixels), got '
                         f'{tolerance!r}')
    return [(dy, dx) for dy in range(-tolerance, tolerance + 1)
            for dx in range(-tolerance, tolerance + 1)
            if dy * dy + dx * dx <= tolerance * tolerance]


def boundary_mask(labels: Tensor) -> Tensor:
    """Pixels with a 4-neighbour of another label, (..., H, W) bool.

    Pixels outside the image are not neighbours: the image border is no
    boundary.
    """
    edge = torch.zeros_like(labels, dtype=torch.bool)
    vertical = labels[..., 1:, :] != labels[..., :-1, :]
    horizontal = labels[..., :, 1:] != labels[..., :, :-1]
    edge[..., 1:, :] |= vertical
    edge[..., :-1, :] |= vertical
    edge[..., :, 1:] |= horizontal
    edge[..., :, :-1] |= horizontal
    return edge


def _word_layout(num_classes: int) -> Tuple[torch.dtype, int]:
    """The narrowest integer dtype whose bits hold a class each, and how
    many classes one word holds (int64 words of 63 beyond 31 classes)."""
    for dtype, bits in ((torch.uint8, 8), (torch.int16, 15),
                        (torch.int32, 31)):
        if num_classes <= bits:
            return dtype, bits
    return torch.int64, 63


def _near(words: Tensor, offsets: List[Tuple[int, int]]) -> Tensor:
    """OR of ``words`` (..., H, W) over the offsets: the classes near a
    pixel."""
    near = torch.zeros_like(words)
    H, W = words.shape[-2:]
    for dy, dx in offsets:
        # near[y, x] |= words[y + dy, x + dx] where inside the image
        ys, yd = slice(max(dy, 0), H + min(dy, 0)), slice(
            max(-dy, 0), H + min(-dy, 0))
        xs, xd = slice(max(dx, 0), W + min(dx, 0)), slice(
            max(-dx, 0), W + min(-dx, 0))
        near[..., yd, xd] |= words[..., ys, xs]
    return near


def _matched(labels: Tensor, own_edge: Tensor, other_labels: Tensor,
             other_edge: Tensor, num_classes: int,
             offsets: List[Tuple[int, int]]) -> Tensor:
    """Boundary pixels of ``labels`` with a same-class boundary pixel of
    the other map within the offsets (shapes broadcast), bool."""
    dtype, bits = _word_layout(num_classes)
    one = torch.ones((), dtype=dtype, device=labels.device)
    zero = torch.zeros((), dtype=dtype, device=labels.device)
    if num_classes <= bits:  # one word: every label is its own bit
        words = torch.where(other_edge, one << other_labels.to(dtype), zero)
        hit = (_near(words, offsets) >> labels.to(dtype)) & one
        return own_edge & hit.bool()
    matched = None
    for first in range(0, num_classes, bits):
        # the classes [first, first + bits) as the bits of one word
        other = other_labels - first
        in_word = other_edge & (other >= 0) & (other < bits)
        words = torch.where(in_word, one << other.clamp_(0, bits - 1).to(
            dtype), zero)
        near = _near(words, offsets)
        own = labels - first
        own_in_word = own_edge & (own >= 0) & (own < bits)
        hit = ((near >> own.clamp_(0, bits - 1).to(dtype)) & one).bool()
        found = own_in_word & hit
        matched = found if matched is None else matched | found
    return matched


def _class_counts(labels: Tensor, edge: Tensor, matched: Tensor,
                  maps: Tuple[int, ...], num_classes: int) -> Tensor:
    """(2, *maps, C) counts of matched and of all boundary pixels per map
    and class, from one histogram of a known size (no data-dependent
    shape, so no host sync)."""
    N = int(torch.Size(maps).numel())
    image = torch.arange(
        N, device=labels.device).view(*maps, 1, 1) * num_classes
    # slot 3 * (map, class) + 0 (no boundary), 1 (unmatched), 2 (matched)
    code = edge.to(torch.uint8) + matched.to(torch.uint8)
    index = labels * 3 + image * 3
    index += code
    index = index.expand(*maps, *index.shape[-2:]).reshape(-1)
    slots = counting.histogram(index, N * num_classes * 3)
    slots = slots.view(*maps, num_classes, 3)
    return torch.stack([slots[..., 2], slots[..., 1] + slots[..., 2]])


def boundary_match_counts(pred: Tensor,
                          reference: Tensor,
                          num_classes: int,
                          tolerance: int = 2,
                          ignore_index: int = 255) -> Tensor:
    """Per-class boundary counts of predicted maps against references.

    Pixels on or next to (4-neighbourhood) an ignored reference pixel are
    not counted: the reference does not say where a boundary lies there.
    Several predictions of the same images (e.g. K sampled maps) share the
    work done on the references: pass them as (K, N, H, W).

    Args:
        pred (Tensor): Predicted classes (N, H, W) or (K, N, H, W), integer,
            in ``[0, num_classes)``.
        reference (Tensor): Reference classes (N, H, W), integer;
            ``ignore_index`` marks pixels that are not scored.
        num_classes (int): Number of classes C.
        tolerance (int): Largest distance in pixels between a boundary pixel
            and its match. Defaults to 2.
        ignore_index (int): Reference value of unscored pixels. Defaults to
            255.

    Returns:
        Tensor: Counts (4, *pred.shape[:-2], C), int64: matched predicted
        boundary pixels, predicted boundary pixels, matched reference
        boundary pixels and reference boundary pixels, per map and class.
    """
    if reference.dim() != 3 or pred.dim() not in (3, 4) \
            or pred.shape[-3:] != reference.shape:
        raise ValueError('pred must be (N, H, W) or (K, N, H, W) and '
                         'reference (N, H, W), got '
                         f'{tuple(pred.shape)} and {tuple(reference.shape)}')
    offsets = disc_offsets(tolerance)
    pred = pred.long()
    reference = reference.to(device=pred.device, dtype=torch.long)
    ignored = reference == ignore_index
    # unscored: ignored pixels and their 4-neighbours
    unscored = ignored | boundary_mask(ignored.to(torch.uint8))
    ref_labels = reference.masked_fill(ignored, 0)
    pred_edge = boundary_mask(pred) & ~unscored
    ref_edge = _reference_edges(reference, ignore_index)
    matched_pred = _matched(pred, pred_edge, ref_labels, ref_edge,
                            num_classes, offsets)
    matched_ref = _matched(ref_labels, ref_edge, pred, pred_edge,
                           num_classes, offsets)
    maps = tuple(pred.shape[:-2])
    return torch.cat([
        _class_counts(pred, pred_edge, matched_pred, maps, num_classes),
        _class_counts(ref_labels, ref_edge, matched_ref, maps, num_classes)
    ])


def _reference_edges(reference: Tensor, ignore_index: int) -> Tensor:
    """Class boundary pixels of reference maps (..., H, W), bool: an
    ignored region is its own label, so its border is no class boundary,
    and ignored pixels and their 4-neighbours are no boundary pixels."""
    ignored = reference == ignore_index
    unscored = ignored | boundary_mask(ignored.to(torch.uint8))
    return boundary_mask(reference) & ~unscored


def boundary_band(reference: Tensor, width: int,
                  ignore_index: int = 255) -> Tensor:
    """Pixels within ``width`` pixels (Euclidean) of a reference class
    boundary, as :func:`boundary_match_counts` finds the boundaries.

    These are the pixels where a prediction's boundary can be matched
    with ``tolerance=width``: a reward restricted to them scores how the
    map runs along the reference's outlines.

    Args:
        reference (Tensor): Label maps (..., H, W), integer.
        width (int): Half-width of the band in pixels, >= 0 (0: the
            boundary pixels only).
        ignore_index (int): Reference value of unscored pixels. Defaults
            to 255.

    Returns:
        Tensor: (..., H, W) bool, False on ignored pixels.
    """
    offsets = disc_offsets(width)
    reference = reference.long()
    edge = _reference_edges(reference, ignore_index).to(torch.uint8)
    return _near(edge, offsets).bool() & (reference != ignore_index)


def boundary_fscore(counts: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    """Precision, recall and F-score per entry from (4, ...) counts.

    Entries without a predicted (reference) boundary have precision
    (recall) 1 when the other map has none either, else 0; F is their
    harmonic mean (0 when both are 0).
    """
    matched_pred, pred_total, matched_ref, ref_total = counts.double()
    precision = torch.where(pred_total > 0,
                            matched_pred / pred_total.clamp(min=1),
                            (ref_total == 0).double())
    recall = torch.where(ref_total > 0, matched_ref / ref_total.clamp(min=1),
                         (pred_total == 0).double())
    fscore = 2 * precision * recall / (precision + recall).clamp(
        min=math.ulp(0.0))
    return precision, recall, fscore
