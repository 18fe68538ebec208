"""Train and evaluate the demo configs on the embedded synthetic set.

``make demo`` runs this after generating ``data/synthetic``. Each config is
trained with mmengine's Runner (progress and ETA in the log), validated at the
end, and a summary table of val mIoU and seconds per iteration is printed.

    python tools/demo.py [--configs CFG ...] [--work-dir work_dirs/demo]
"""
import argparse
import os.path as osp
from typing import Dict, List

from mmengine.config import Config
from mmengine.runner import Runner

import rss_mmseg  # noqa: F401
from rss_mmseg.utils import check_config

# The first config is the reference the others are compared with.
DEMO_CONFIGS = [
    'configs/baselines/ce_fast-scnn_1xb8-1k_synthetic-128x128.py',
    'configs/rss/rss-pixel_fast-scnn_1xb8-1k_synthetic-128x128.py',
]


def train_and_score(cfg_path: str, work_root: str) -> Dict[str, float]:
    """Train one config; return its final val mIoU and mean s/iter."""
    cfg = Config.fromfile(cfg_path)
    name = osp.splitext(osp.basename(cfg_path))[0]
    cfg.work_dir = osp.join(work_root, name)
    check_config(cfg, cfg_path)
    runner = Runner.from_cfg(cfg)
    runner.train()
    hub = runner.message_hub
    return dict(
        mIoU=hub.get_scalar('val/mIoU').current(),
        s_per_iter=hub.get_scalar('train/time').mean(),
        iters=runner.iter)


def main(argv: List[str] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--configs', nargs='+', default=DEMO_CONFIGS)
    parser.add_argument('--work-dir', default='work_dirs/demo')
    args = parser.parse_args(argv)
    results = {cfg: train_and_score(cfg, args.work_dir) for cfg in args.configs}
    print('\nDemo on the synthetic set (val split, 100 images, 128x128):')
    ref = results[args.configs[0]]
    print(f'{"config":<48} {"iters":>6} {"val mIoU":>9} {"x ref":>6} '
          f'{"s/iter":>7}')
    for cfg, r in results.items():
        name = osp.splitext(osp.basename(cfg))[0]
        print(f'{name:<48} {r["iters"]:>6} {r["mIoU"]:>9.2f} '
              f'{r["mIoU"] / max(ref["mIoU"], 1e-9):>6.3f} '
              f'{r["s_per_iter"]:>7.3f}')


if __name__ == '__main__':
    main()
