"""`import rss_mmseg` registers every component into mmseg's registries."""
import pytest
from mmseg.registry import DATASETS, HOOKS, MODELS, TRANSFORMS

import rss_mmseg


@pytest.mark.parametrize('registry, name', [
    (DATASETS, 'CamVidDataset'),
    (DATASETS, 'SyntheticShapesDataset'),
    (TRANSFORMS, 'CheckedLoadAnnotations'),
    (TRANSFORMS, 'CheckedLoadImageFromFile'),
    (HOOKS, 'NumClassesCheckHook'),
    (HOOKS, 'LabelLeakCheckHook'),
    (HOOKS, 'ProgressiveScaleHook'),
    (HOOKS, 'RandomStateHook'),
    (HOOKS, 'PolicyAnchorHook'),
    (MODELS, 'RSSHead'),
    (MODELS, 'RSSEncoderDecoder'),
    (MODELS, 'PixelMatchReward'),
    (MODELS, 'ImageMIoUReward'),
    (MODELS, 'ImageAccuracyReward'),
    (MODELS, 'ImageDiceReward'),
    (MODELS, 'CallableReward'),
    (MODELS, 'PixelRewardLoss'),
    (MODELS, 'PSRRewardLoss'),
    (MODELS, 'PSDLoss'),
    (MODELS, 'LocalExpectationLoss'),
    (MODELS, 'ImageRecallReward'),
    (MODELS, 'WeightedSumReward'),
    (MODELS, 'MarginalMIoUReward'),
])
def test_component_is_registered(registry, name):
    assert name in registry.module_dict, f'{name} missing from {registry}'
    assert registry.get(name).__module__.startswith('rss_mmseg.')


def test_version():
    assert isinstance(rss_mmseg.__version__, str)
