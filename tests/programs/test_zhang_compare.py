"""zhang_compare: two runs' metrics in one table and their paired difference, only on the
same images."""

import numpy as np
import pytest

from colorjax.errors import UsageError
from colorjax.eval import metrics, report
from colorjax.programs import zhang_compare
from experiments import zhang_compare as experiment


def _saved_run(path, decoding, ab_offset, truth_seed=0):
  """A run's evaluation as zhang's main saves it: metrics and the default decoding's sums."""
  rng = np.random.default_rng(truth_seed)
  rgb = rng.random((5, 8, 8, 3)).astype(np.float32)
  ab = rng.normal(0, 20, (5, 8, 8, 2)).astype(np.float32)
  sums = {k: np.asarray(v) for k, v in metrics.image_sums(
      ab + ab_offset, ab, rgb, rgb, np.ones(5, np.float32)).items()}
  path.mkdir()
  report.save_metrics(path, {decoding: metrics.summarize({k: v.sum(0) for k, v in
                                                          sums.items()})}, {decoding: sums})


def test_zhang_compare_pairs_two_runs_on_the_same_images(tmp_path, capsys):
  _saved_run(tmp_path / 'softmax', 'T=0.38', ab_offset=2.0)
  _saved_run(tmp_path / 'regression', 'regression', ab_offset=9.0)
  config = experiment.get_config()
  config.runs = (str(tmp_path / 'softmax'), str(tmp_path / 'regression'))
  (tmp_path / 'out').mkdir()  # run.py makes the workdir
  zhang_compare.main(config, tmp_path / 'out')
  text = (tmp_path / 'out' / 'report.md').read_text()
  assert 'T=0.38 − ' in text and 'the 5 evaluation images' in text
  assert f"AuC higher for `{tmp_path / 'softmax'}` T=0.38" in text
  _saved_run(tmp_path / 'other', 'regression', ab_offset=9.0, truth_seed=1)
  config.runs = (str(tmp_path / 'softmax'), str(tmp_path / 'other'))
  with pytest.raises(UsageError, match='evaluated on different images'):
    zhang_compare.main(config, tmp_path / 'out2')
