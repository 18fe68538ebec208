"""tools/analysis_tools/class_probability.py: own-class probability and IoU
per class, by hand and through a checkpoint's val run."""
import json
import math

import pytest
import torch

from tests.conftest import SYNTHETIC_CONFIG, as_cfg_options, load_tool, \
    tiny_run_overrides


def _load():
    return load_tool('analysis_tools/class_probability.py',
                     'class_probability')


def _logits(probs):
    """(H, W, C) probabilities -> (C, H, W) logits whose softmax they are."""
    return torch.tensor(probs).log().permute(2, 0, 1)


def test_sums_own_probability_and_iou_over_images():
    stats = _load().OwnClassStats(num_classes=3, ignore_index=255)
    stats.update(
        _logits([[[0.7, 0.2, 0.1], [0.1, 0.6, 0.3]],
                 [[0.5, 0.4, 0.1], [0.1, 0.1, 0.8]]]),
        torch.tensor([[0, 1], [1, 255]]))
    # class 2 only in the second image; the ignored pixel above counts nowhere
    stats.update(_logits([[[0.2, 0.5, 0.3]]]), torch.tensor([[2]]))
    summary = stats.summary()
    assert summary['pixels'] == [1, 2, 1]
    assert summary['own_probability'] == pytest.approx([0.7, 0.5, 0.3])
    # argmax: 0, 1, 0 (a class-1 pixel), 1 (the class-2 pixel)
    # class 0: 1 hit / (1 + 2 - 1); class 1: 1 / (2 + 2 - 1); class 2: 0 / 1
    assert summary['iou'] == pytest.approx([50.0, 100 / 3, 0.0])


def test_a_class_never_labelled_or_predicted_has_no_figures():
    stats = _load().OwnClassStats(num_classes=3)
    stats.update(_logits([[[0.8, 0.1, 0.1]]]), torch.tensor([[0]]))
    summary = stats.summary()
    assert summary['own_probability'][1:] == [None, None]
    assert summary['iou'] == [100.0, None, None]


def test_bad_inputs_are_named():
    stats = _load().OwnClassStats(num_classes=3)
    with pytest.raises(ValueError, match=r'expected \(3, H, W\)'):
        stats.update(torch.zeros(4, 2, 2), torch.zeros(2, 2))
    with pytest.raises(ValueError, match='does not match'):
        stats.update(torch.zeros(3, 2, 2), torch.zeros(2, 3))
    with pytest.raises(ValueError, match='outside 0..2'):
        stats.update(torch.zeros(3, 1, 1), torch.tensor([[3]]))


def test_runs_a_checkpoint_over_the_val_set(synthetic_root, tmp_path,
                                            capsys):
    """A head whose only output is a large bias on class 1 gives class 1
    all the probability on its own pixels and the others none."""
    from mmengine.config import Config
    from mmseg.registry import MODELS
    tool = _load()
    options = as_cfg_options(
        tiny_run_overrides(synthetic_root, str(tmp_path / 'work'), 1))
    cfg = Config.fromfile(SYNTHETIC_CONFIG)
    model = MODELS.build(cfg.model)
    conv_seg = model.decode_head.conv_seg
    with torch.no_grad():
        conv_seg.weight.zero_()
        conv_seg.bias.zero_()
        conv_seg.bias[1] = 30.0
    checkpoint = str(tmp_path / 'biased.pth')
    torch.save(dict(state_dict=model.state_dict()), checkpoint)
    out = tmp_path / 'probability.json'
    results = tool.main([SYNTHETIC_CONFIG, checkpoint, '--out', str(out),
                         '--cfg-options', *options])
    summary = results[checkpoint]
    assert all(p > 0 for p in summary['pixels'])
    probability = summary['own_probability']
    assert probability[1] > 0.999
    assert max(probability[:1] + probability[2:]) < 1e-6
    assert all(iou == 0.0 for i, iou in enumerate(summary['iou']) if i != 1)
    pixels = summary['pixels']
    assert summary['iou'][1] == pytest.approx(100 * pixels[1] / sum(pixels))
    saved = json.loads(out.read_text())
    assert saved['checkpoints'][checkpoint]['pixels'] == pixels
    assert len(saved['classes']) == len(pixels)
    table = capsys.readouterr().out
    assert f'| {saved["classes"][1]} | 100.00% / ' in table
    assert not math.isnan(sum(probability))


def test_columns_are_the_shortest_tails_that_differ():
    names = _load().column_names(
        ['w/a/iter_4000.pth', 'w/b/iter_4000.pth', 'w/b/iter_2000.pth'])
    assert names == ['a/iter_4000.pth', 'b/iter_4000.pth', 'b/iter_2000.pth']
    assert _load().column_names(['x/iter_1.pth', 'x/iter_2.pth']) == \
        ['iter_1.pth', 'iter_2.pth']


def test_missing_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.pth: no such file'):
        _load().main([SYNTHETIC_CONFIG, str(tmp_path / 'nope.pth')])
