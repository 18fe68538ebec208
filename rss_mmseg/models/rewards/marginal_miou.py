"""An image's first-order share of the dataset mIoU, as one scalar."""
from numbers import Real
from typing import Optional

import torch
from mmseg.registry import MODELS
from torch import Tensor

from .image import _class_terms, _ConfusionReward

__all__ = ['MarginalMIoUReward']


@MODELS.register_module()
class MarginalMIoUReward(_ConfusionReward):
    """What a sampled map adds to the dataset mIoU, to first order.

    Validation reports the dataset mIoU, whose class terms pool all images:
    ``IoU_c = sum I_c / sum U_c``. A per-image mIoU weighs a class by its
    presence in each image instead, so on coarse PSR cells it pays to label
    a cell that is partly a small class (a pedestrian before a building)
    with that class: the small class's IoU in that image gains more than
    the large one's loses, and false positives in images without the class
    cost nothing under ``ImageMIoUReward(classes='reference')``. Moving one
    image's counts by ``(dI_c, dU_c)`` moves the dataset term by
    ``(dI_c - IoU_c dU_c) / sum U_c``, so the reward of a map is::

        r = 1/C * sum_c (I_c - IoU_c * U_c) / u_c

    with ``I_c, U_c`` the map's intersection and union with the reference,
    and ``IoU_c`` and ``u_c`` (a class's union per image) running averages
    over the training batches of the samples scored. A class's false
    positives cost in proportion to how well the policy already segments
    it: nothing while its IoU is 0 (so a class is free to be tried, as
    under ``classes='reference'``), more as it is learned, in every image.

    The averages are kept on the device (no host read), start from the
    first batch scored and are not saved in checkpoints: after ``--resume``
    they are re-estimated within about ``1 / (1 - momentum)`` steps. In
    distributed training each rank keeps its own.

    Args:
        momentum (float): Weight of the past in the running averages, in
            [0, 1). Defaults to 0.98 (about 50 batches).
        ignore_index (int): Reference value of pixels that are not scored.
            Defaults to 255.
        num_classes (int, optional): Number of classes; None takes the
            head's. Defaults to None.
        band (int, optional): Score only the reference pixels within
            ``band`` pixels of a reference class boundary. Defaults to None.
    """

    value_range = None  # negative where a map loses IoU, unbounded above 0

    def __init__(self,
                 momentum: float = 0.98,
                 ignore_index: int = 255,
                 num_classes: Optional[int] = None,
                 band: Optional[int] = None) -> None:
        super().__init__(
            ignore_index=ignore_index, num_classes=num_classes, band=band)
        if isinstance(momentum, bool) or not isinstance(
                momentum, Real) or not 0 <= momentum < 1:
            raise ValueError('MarginalMIoUReward: momentum must be a number '
                             f'in [0, 1), got {momentum!r}')
        self.momentum = float(momentum)
        self.intersection: Optional[Tensor] = None  # (C,) per image
        self.union: Optional[Tensor] = None  # (C,) per image

    def _update(self, true_pos: Tensor, union: Tensor) -> None:
        """Fold the batch's mean per-image counts into the averages."""
        batch_inter = true_pos.detach().flatten(0, -2).mean(0)
        batch_union = union.detach().flatten(0, -2).mean(0)
        if self.union is None or self.union.shape != batch_union.shape \
                or self.union.device != batch_union.device:
            self.intersection, self.union = batch_inter, batch_union
            return
        self.intersection = torch.lerp(batch_inter, self.intersection,
                                       self.momentum)
        self.union = torch.lerp(batch_union, self.union, self.momentum)

    def score(self, confusion: Tensor) -> Tensor:
        true_pos, ref_count, pred_count = _class_terms(confusion)
        union = ref_count + pred_count - true_pos
        self._update(true_pos, union)
        iou = self.intersection / self.union.clamp(min=1e-6)
        per_class = (true_pos - iou * union) / self.union.clamp(min=1)
        return per_class.mean(-1)

    def __repr__(self) -> str:
        return f'{super().__repr__()[:-1]}, momentum={self.momentum})'
