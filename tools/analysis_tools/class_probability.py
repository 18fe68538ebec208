"""Each class's softmax probability on its own pixels, per checkpoint.

A class the policy almost never samples gets almost no reward, so how much
probability a checkpoint gives a class on the pixels that truly are that
class says whether image-level RSS is still learning it, before its IoU
moves (docs/method.md section 12, *Session 19*: bicyclist at 0.8% after
``rss-image``'s 2k iterations, 5.4% after ``natural-16``'s 4k). For every
checkpoint this runs the config's val dataloader through the model and
prints, per class, the mean probability over its own labelled pixels and
the argmax IoU::

    python tools/analysis_tools/class_probability.py CONFIG \\
        work_dirs/run/iter_2000.pth work_dirs/run/iter_4000.pth \\
        --out probability.json
"""
import argparse
import json
import os.path as osp
from typing import Dict, List, Optional, Sequence

import torch
from mmseg.evaluation.metrics import IoUMetric
from torch import Tensor


class OwnClassStats:
    """Running sums over pixels: the probability each labelled pixel's
    softmax gives its own class, and the argmax prediction's intersection
    and union, per class (mmseg's ``IoUMetric.intersect_and_union``, so the
    IoU is the one ``tools/test.py`` reports)."""

    def __init__(self, num_classes: int, ignore_index: int = 255) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.prob_sum = torch.zeros(num_classes, dtype=torch.float64)
        self.pixels = torch.zeros(num_classes, dtype=torch.float64)
        self.intersect = torch.zeros(num_classes, dtype=torch.float64)
        self.union = torch.zeros(num_classes, dtype=torch.float64)

    def update(self, seg_logits: Tensor, gt: Tensor) -> None:
        """Add one image: ``seg_logits`` (C, H, W), ``gt`` (H, W)."""
        num_classes = self.num_classes
        if seg_logits.dim() != 3 or seg_logits.shape[0] != num_classes:
            raise ValueError(f'seg_logits of shape {tuple(seg_logits.shape)}'
                             f': expected ({num_classes}, H, W)')
        if gt.shape != seg_logits.shape[1:]:
            raise ValueError(f'gt of shape {tuple(gt.shape)} does not match '
                             f'seg_logits {tuple(seg_logits.shape)}')
        labels = gt.reshape(-1).long()
        valid = labels != self.ignore_index
        if bool(((labels < 0) | (labels >= num_classes))[valid].any()):
            raise ValueError(
                f'gt holds labels outside 0..{num_classes - 1} other than '
                f'ignore_index {self.ignore_index}')
        probs = seg_logits.float().softmax(0).reshape(num_classes, -1)
        intersect, union, _, count = IoUMetric.intersect_and_union(
            probs.argmax(0), labels, num_classes, self.ignore_index)
        labels = labels[valid]
        own = probs[:, valid].gather(0, labels[None])[0].double()
        self.prob_sum.index_add_(0, labels, own)
        self.pixels += count.double()
        self.intersect += intersect.double()
        self.union += union.double()

    def summary(self) -> Dict[str, List[Optional[float]]]:
        """Per class: mean own probability (None for a class with no
        labelled pixel), IoU in percent (None where the union is empty)
        and the pixel count."""

        def ratio(num: Tensor, den: Tensor, scale: float) -> list:
            return [
                None if d == 0 else float(scale * n / d)
                for n, d in zip(num.tolist(), den.tolist())
            ]

        return dict(
            own_probability=ratio(self.prob_sum, self.pixels, 1.0),
            iou=ratio(self.intersect, self.union, 100.0),
            pixels=[int(p) for p in self.pixels.tolist()])


def measure(model, checkpoint: str, dataloader) -> Dict[str, list]:
    """Load ``checkpoint`` into ``model`` (every key, strictly) and run
    ``dataloader`` through it; the per-class summary of
    :class:`OwnClassStats`."""
    from mmengine.runner import load_checkpoint
    from mmengine.utils import ProgressBar

    load_checkpoint(model, checkpoint, map_location='cpu', strict=True)
    model.eval()
    stats = OwnClassStats(model.decode_head.num_classes,
                          model.decode_head.ignore_index)
    progress = ProgressBar(len(dataloader.dataset))
    with torch.no_grad():
        for data in dataloader:
            for sample in model.test_step(data):
                stats.update(sample.seg_logits.data,
                             sample.gt_sem_seg.data[0])
                progress.update()
    print()
    return stats.summary()


def column_names(paths: Sequence[str]) -> List[str]:
    """The shortest path tails that tell the checkpoints apart
    (``run_a/iter_4000.pth`` and ``run_b/iter_4000.pth``)."""
    parts = [osp.normpath(p).split(osp.sep) for p in paths]
    for depth in range(1, max(len(p) for p in parts) + 1):
        names = [osp.join(*p[-depth:]) for p in parts]
        if len(set(names)) == len(names):
            return names
    return list(paths)


def format_table(classes: Sequence[str], names: Sequence[str],
                 summaries: Sequence[Dict[str, list]]) -> str:
    """Markdown: a row per class, ``probability % / IoU`` per checkpoint."""

    def cell(summary, c):
        prob, iou = summary['own_probability'][c], summary['iou'][c]
        prob = '-' if prob is None else f'{100 * prob:.2f}%'
        iou = '-' if iou is None else f'{iou:.1f}'
        return f'{prob} / {iou}'

    lines = ['| class | ' + ' | '.join(names) + ' |',
             '|---|' + '---|' * len(names)]
    for c, name in enumerate(classes):
        lines.append(f'| {name} | ' +
                     ' | '.join(cell(s, c) for s in summaries) + ' |')
    return '\n'.join(lines)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='the config the checkpoints trained')
    parser.add_argument('checkpoints', nargs='+', help='checkpoint files')
    parser.add_argument('--out', help='write the summaries here as JSON')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction, default={},
        help='override config keys, as tools/test.py takes them')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, dict]:
    args = parse_args(argv)
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmengine.runner import Runner
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules

    import rss_mmseg  # noqa: F401  (registers; safe checkpoint loading)

    for path in [args.config, *args.checkpoints]:
        if not osp.isfile(path):
            raise FileNotFoundError(f'{path}: no such file')
    register_all_modules(init_default_scope=False)
    cfg = Config.fromfile(args.config)
    cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    cfg.val_dataloader.num_workers = 0
    cfg.val_dataloader.persistent_workers = False
    dataloader = Runner.build_dataloader(cfg.val_dataloader)
    classes = dataloader.dataset.metainfo['classes']
    # built once, not by mmseg.apis.init_model (which needs the
    # checkpoint's meta); each checkpoint overwrites every weight
    model = MODELS.build(cfg.model)
    results = {}
    for checkpoint in args.checkpoints:
        results[checkpoint] = measure(model, checkpoint, dataloader)
    names = column_names(args.checkpoints)
    print('own-class probability / IoU')
    print(format_table(classes, names, list(results.values())))
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(dict(classes=list(classes), checkpoints=results), f,
                      indent=1)
    return results


if __name__ == '__main__':
    main()
