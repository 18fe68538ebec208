"""Boundary F-score: how well predicted class boundaries trace the true ones.

mIoU counts pixels and barely moves when a boundary is a few pixels off;
thin structures and object outlines are what users of segmentation look at.
"""
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger, print_log
from mmseg.registry import METRICS
from prettytable import PrettyTable

from ..functional import boundary_fscore, boundary_match_counts, disc_offsets


@METRICS.register_module()
class BoundaryFScoreMetric(BaseMetric):
    """Per-class boundary precision, recall and F-score over a dataset.

    A boundary pixel of class ``c`` is a pixel of class ``c`` with a
    4-neighbour of another class; a predicted one counts as correct when a
    reference boundary pixel of the same class lies within ``tolerance``
    pixels (Euclidean), and a reference one as found when a predicted one
    does (:func:`~rss_mmseg.evaluation.functional.boundary_match_counts`).
    Counts are summed over the dataset per class, as ``IoUMetric`` sums
    areas; the class scores are averaged over the classes with a boundary
    in the reference or the predictions (others are NaN in the table).
    Pixels on or next to ``ignore_index`` are not scored.

    Use it beside ``IoUMetric``::

        val_evaluator = [
            dict(type='IoUMetric', iou_metrics=['mIoU']),
            dict(type='BoundaryFScoreMetric', tolerance=2),
        ]

    Args:
        tolerance (int): Largest distance in pixels between a boundary pixel
            and its match, at the resolution of the label maps. Defaults
            to 2.
        ignore_index (int): Reference value of unscored pixels. Defaults to
            255.
        collect_device (str): Device for collecting results across ranks,
            'cpu' or 'gpu'. Defaults to 'cpu'.
        prefix (str, optional): Prefix of the metric names. Defaults to
            None.

    Returns (from ``evaluate``): ``mBFscore``, ``mBPrecision`` and
    ``mBRecall`` in percent.
    """

    def __init__(self,
                 tolerance: int = 2,
                 ignore_index: int = 255,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 **kwargs) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        disc_offsets(tolerance)  # validates it
        if kwargs:
            raise TypeError('BoundaryFScoreMetric got unknown arguments '
                            f'{sorted(kwargs)}; it takes tolerance, '
                            'ignore_index, collect_device and prefix')
        self.tolerance = tolerance
        self.ignore_index = ignore_index

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        """Count the boundary pixels of each prediction and reference."""
        num_classes = len(self.dataset_meta['classes'])
        for data_sample in data_samples:
            pred = data_sample['pred_sem_seg']['data'].squeeze(0)
            reference = data_sample['gt_sem_seg']['data'].squeeze(0)
            counts = boundary_match_counts(pred[None], reference[None],
                                           num_classes, self.tolerance,
                                           self.ignore_index)
            self.results.append(counts[:, 0].cpu())

    def compute_metrics(self, results: List[torch.Tensor]) -> Dict[str, float]:
        """Sum the counts per class and turn them into scores."""
        logger: MMLogger = MMLogger.get_current_instance()
        counts = torch.stack(results).sum(0)  # (4, C)
        precision, recall, fscore = boundary_fscore(counts)
        has_boundary = (counts[1] > 0) | (counts[3] > 0)
        nan = torch.full_like(fscore, float('nan'))
        per_class = OrderedDict(
            BFscore=torch.where(has_boundary, fscore, nan).numpy() * 100,
            BPrecision=torch.where(has_boundary, precision, nan).numpy() *
            100,
            BRecall=torch.where(has_boundary, recall, nan).numpy() * 100)
        table = PrettyTable()
        table.add_column('Class', list(self.dataset_meta['classes']))
        for name, values in per_class.items():
            table.add_column(name, np.round(values, 2).tolist())
        print_log(f'per class boundary results (tolerance '
                  f'{self.tolerance} px):\n' + table.get_string(),
                  logger=logger)
        return {
            f'm{name}': float(np.round(np.nanmean(values), 2))
            if np.isfinite(values).any() else float('nan')
            for name, values in per_class.items()
        }
