"""flowers_resnet end to end: the classifier, then the colorizer from its encoder and from
scratch, in one report; the pretrained colorizer colorizes."""

import json

import pytest

from tests import commands


@pytest.mark.slow
def test_flowers_resnet_smoke_runs_all_three_stages(tmp_path):
  steps = [f'--config.{stage}.{key}={value}' for stage in ('classifier', 'colorizer')
           for key, value in (('num_steps', 10), ('checkpoint_every', 10),
                              ('data.batch_size', 4))]
  result = commands.run_py('--experiment=flowers_resnet:smoke', f'--workdir={tmp_path}', *steps)
  assert result.returncode == 0, result.stderr
  report = (tmp_path / 'report.md').read_text()
  assert 'validation top-1 accuracy' in report
  assert '| pretrained |' in report and '| scratch |' in report
  metrics = json.loads((tmp_path / 'metrics_eval.json').read_text())
  assert 0.0 <= metrics['classifier_top1'] <= 1.0
  for stage in ('classifier', 'pretrained', 'scratch'):
    assert list((tmp_path / stage / 'checkpoints').glob('[0-9]*'))
  assert len(commands.colorize_a_photo(tmp_path, tmp_path / 'colorized')) == 1
