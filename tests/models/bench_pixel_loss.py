"""Micro-benchmark: the pixel-RSS loss path against cross-entropy (CPU).

Times, at Fast-SCNN's CamVid shape (logits 8x11x22x30 upsampled to
176x240), the decode head's loss computation plus its backward to the
head's logits:

* ``ce``: ``BaseDecodeHead.loss_by_feat`` with mmseg's CrossEntropyLoss
  (resize, CE, acc_seg) -- what the baseline pays;
* ``rss``: ``RSSHead.loss_by_feat`` (resize, softmax, sampling, reward,
  SyncAN/baseline, closed-form gradient, logged statistics);
* the samplers alone on the full-resolution probabilities.

Run (not collected by pytest)::

    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python \
        tests/models/bench_pixel_loss.py [--threads 1] [--repeats 30]
"""
import argparse
import time

import torch
import torch.nn.functional as F
from mmseg.registry import MODELS

import rss_mmseg  # noqa: F401
from rss_mmseg.models.policy import sample_gumbel_max, sample_inverse_cdf
from tests.models.utils import make_data_samples

B, C, H, W = 8, 11, 176, 240
HEAD = dict(
    type='DepthwiseSeparableFCNHead',
    in_channels=16,
    channels=16,
    concat_input=False,
    num_classes=C,
    in_index=-1,
    loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False))


def median_ms(fns, repeats):
    """Median milliseconds per call of each function, calls interleaved
    (one round runs every function once) so that load from other processes
    affects all of them alike."""
    for fn in fns.values():
        fn()
        fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {
        name: 1e3 * sorted(ts)[len(ts) // 2]
        for name, ts in times.items()
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--repeats', type=int, default=30)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    logits = torch.randn(B, C, H // 8, W // 8) * 2
    labels = torch.randint(0, C, (B, H, W))
    labels[:, :8] = 255
    samples = make_data_samples(labels)

    ce_head = MODELS.build(HEAD)

    def ce():
        z = logits.clone().requires_grad_()
        losses = ce_head.loss_by_feat(z, samples)
        losses['loss_ce'].backward()

    def rss(**kwargs):
        head = MODELS.build(
            dict(
                type='RSSHead',
                head=HEAD,
                reward=dict(type='PixelMatchReward'),
                loss=dict(type='PixelRewardLoss', **kwargs.pop('loss', {})),
                **kwargs))

        def run():
            z = logits.clone().requires_grad_()
            losses = head.loss_by_feat(z, samples)
            losses['loss_pixel_reward'].backward()

        return run

    print(f'loss path, forward + backward, {B}x{C}x{H}x{W}, '
          f'{args.threads} thread(s), median of {args.repeats}, interleaved:')
    variants = {
        'cross-entropy (mmseg loss_by_feat)': ce,
        'pixel RSS, K=1 (default)': rss(),
        'pixel RSS, K=1, temperature 2': rss(temperature=2.0),
        'pixel RSS, K=1, SyncAN': rss(loss=dict(baseline='syncan')),
        'pixel RSS, K=1, entropy bonus': rss(loss=dict(entropy_weight=0.01)),
        'pixel RSS, K=2': rss(num_samples=2),
        'pixel RSS, K=4': rss(num_samples=4),
    }
    ms = median_ms(variants, args.repeats)
    base = ms['cross-entropy (mmseg loss_by_feat)']
    for name, value in ms.items():
        print(f'  {name:44s} {value:7.2f} ms  ({value / base:.2f}x CE)')

    probs = torch.softmax(
        F.interpolate(logits, (H, W), mode='bilinear'), dim=1)
    full_logits = probs.log()
    print('sampling K action maps from (8, 11, 176, 240) probabilities:')
    for K in (1, 4):
        samplers = {
            'inverse CDF (used)': lambda: sample_inverse_cdf(probs, K),
            'Gumbel-max': lambda: sample_gumbel_max(full_logits, K),
            'Categorical over permuted probs': lambda: torch.distributions.
            Categorical(probs=probs.permute(0, 2, 3, 1)).sample((K, )),
        }
        for name, value in median_ms(samplers,
                                     max(5, args.repeats // 3)).items():
            print(f'  K={K} {name:40s} {value:7.2f} ms')


if __name__ == '__main__':
    main()
