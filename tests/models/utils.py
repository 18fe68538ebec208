"""Helpers shared by the model tests: data samples from label maps."""
from typing import List

import torch
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample


def make_data_samples(labels: torch.Tensor) -> List[SegDataSample]:
    """One SegDataSample per (H, W) label map of a (B, H, W) tensor."""
    samples = []
    for label in labels:
        size = tuple(label.shape)
        sample = SegDataSample(gt_sem_seg=PixelData(data=label[None].long()))
        sample.set_metainfo(
            dict(img_shape=size, ori_shape=size, pad_shape=size))
        samples.append(sample)
    return samples


def random_labels(batch: int, num_classes: int, size=(8, 8),
                  ignore_rows: int = 1, seed: int = 0) -> torch.Tensor:
    """Random (B, H, W) labels whose first ``ignore_rows`` rows are 255."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, num_classes, (batch, *size), generator=gen)
    labels[:, :ignore_rows] = 255
    return labels
