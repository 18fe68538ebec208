"""Which modules of a model a KL anchor applies to."""
from typing import List, Tuple

from torch import nn


def anchored_heads(model: nn.Module) -> List[Tuple[str, nn.Module]]:
    """``(name, module)`` of the submodules of ``model`` with
    ``anchor_weight > 0`` (the RSS heads anchored to the starting policy),
    in module order."""
    return [(name, m) for name, m in model.named_modules()
            if name and getattr(m, 'anchor_weight', 0) > 0]
