"""Check that the installed stack imports together, mmcv ops included.

Run by ``make venv`` after the install: an mmcv built against another torch
fails here (``undefined symbol`` from ``mmcv._ext``) instead of in a test.
"""
import torch
import torchvision
import mmcv
import mmcv.ops  # noqa: F401  (the compiled ops: fails on an ABI mismatch)
import mmengine
import mmseg
import mmpretrain
import rss_mmseg

boxes = torch.tensor([[0., 0., 1., 1.], [0., 0., 1., 1.]])
kept = mmcv.ops.nms(boxes, torch.tensor([0.9, 0.8]), 0.5)[1]
assert kept.tolist() == [0], kept
print('stack ok: torch', torch.__version__, '| torchvision',
      torchvision.__version__, '| mmcv', mmcv.__version__, '| mmengine',
      mmengine.__version__, '| mmseg', mmseg.__version__, '| mmpretrain',
      mmpretrain.__version__, '| rss_mmseg', rss_mmseg.__version__)
