"""Several rewards of one level in one config, as a weighted sum."""
from numbers import Real
from typing import List, Optional, Sequence, Tuple, Union

from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from torch import Tensor

from .checks import check_reward_output

ConfigType = Union[dict, object]


@MODELS.register_module()
class WeightedSumReward:
    """``sum_i w_i r_i`` of rewards of one level, e.g. mIoU plus boundary F.

    Every part is built from its config (or taken as given), must declare
    the same ``level``, and is checked like a reward of its own (shape,
    dtype, finiteness, value range), so an error names the part. An entry
    is valid where every part is valid. The sum's ``value_range`` follows
    from the parts' when all declare one.

    Example::

        reward=dict(
            type='WeightedSumReward',
            rewards=[dict(type='ImageMIoUReward', classes='reference'),
                     dict(type='BoundaryFScoreReward', num_classes=11)],
            weights=[0.5, 0.5])

    Args:
        rewards (list[dict | object]): The parts (configs or rewards).
        weights (list[float], optional): One weight per part. Defaults to
            equal weights summing to 1.
    """

    def __init__(self,
                 rewards: Sequence[ConfigType],
                 weights: Optional[Sequence[float]] = None) -> None:
        if not rewards:
            raise ValueError('WeightedSumReward needs at least one reward in '
                             '`rewards`')
        self.rewards = [
            MODELS.build(r) if isinstance(r, dict) else r for r in rewards
        ]
        if weights is None:
            weights = [1.0 / len(self.rewards)] * len(self.rewards)
        if len(weights) != len(self.rewards) or not all(
                isinstance(w, Real) and not isinstance(w, bool)
                for w in weights):
            raise ValueError(
                f'WeightedSumReward: weights {list(weights)} must be one '
                f'number per reward ({len(self.rewards)} rewards)')
        self.weights = [float(w) for w in weights]
        levels = {getattr(r, 'level', None) for r in self.rewards}
        if len(levels) != 1 or levels - {'pixel', 'image'}:
            raise ValueError(
                'WeightedSumReward: every reward must declare the same level '
                "('pixel' or 'image'), got "
                f'{[(r, getattr(r, "level", None)) for r in self.rewards]}')
        self.level = levels.pop()
        self.needs_inputs = any(
            getattr(r, 'needs_inputs', False) for r in self.rewards)
        if all(hasattr(r, 'score_cells') for r in self.rewards):
            # PSR grids scored from per-cell counts, without the upsampled
            # (K, B, H, W) maps, when every part can
            self.score_cells = self._score_cells
        if all(hasattr(r, 'score_cell_variants') for r in self.rewards):
            # exact one-cell variants (LocalExpectationLoss) when every
            # part can score them
            self.score_cell_variants = self._score_cell_variants
        ranges = [getattr(r, 'value_range', None) for r in self.rewards]
        self.value_range: Optional[Tuple[float, float]] = None
        if all(r is not None for r in ranges):
            ends = [(w * lo, w * hi) for w, (lo, hi) in zip(
                self.weights, ranges)]
            self.value_range = (sum(min(e) for e in ends),
                                sum(max(e) for e in ends))

    def __call__(self,
                 actions: Tensor,
                 data_samples: List[SegDataSample],
                 inputs: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """The weighted sum of the parts' rewards and the AND of their
        valid masks."""
        parts = []
        for reward in self.rewards:
            if getattr(reward, 'needs_inputs', False):
                out = reward(actions, data_samples, inputs=inputs)
            else:
                out = reward(actions, data_samples)
            parts.append(
                check_reward_output(reward, out, actions, self.level))
        return self._weighted(parts)

    def _score_cells(self, cell_actions: Tensor,
                     data_samples: List[SegDataSample]
                     ) -> Tuple[Tensor, Tensor]:
        """The weighted sum of the parts' rewards of the upsampled cell
        grids (bound as ``score_cells`` when every part has it)."""
        return self._weighted([
            reward.score_cells(cell_actions, data_samples)
            for reward in self.rewards
        ])

    def _weighted(self, parts: Sequence[Tuple[Tensor, Tensor]]
                  ) -> Tuple[Tensor, Tensor]:
        """``sum_i w_i r_i`` of the parts' ``(rewards, valid)`` and the AND
        of their valid masks."""
        total, valid = None, None
        for (part, part_valid), weight in zip(parts, self.weights):
            total = part * weight if total is None else total + part * weight
            valid = part_valid if valid is None else valid & part_valid
        return total, valid

    def _score_cell_variants(self,
                             cell_actions: Tensor,
                             data_samples: List[SegDataSample],
                             pooled: bool = False
                             ) -> Tuple[Tensor, Tensor, Tensor]:
        """The weighted sums of the parts' rewards and one-cell variant
        gains (bound as ``score_cell_variants`` when every part has it)."""
        total = None
        for reward, weight in zip(self.rewards, self.weights):
            rewards, valid, gains = reward.score_cell_variants(
                cell_actions, data_samples, pooled=pooled)
            part = (rewards * weight, valid, gains * weight)
            total = part if total is None else (
                total[0] + part[0], total[1] & part[1], total[2] + part[2])
        return total

    def __repr__(self) -> str:
        parts = ', '.join(f'{w:g} * {r!r}'
                          for r, w in zip(self.rewards, self.weights))
        return f'{self.__class__.__name__}({parts})'
