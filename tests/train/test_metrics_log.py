"""The append-only metric logs: a last line cut short (a full disk, kill -9 mid-append) is
dropped with a one-line notice and cut from the file on resume; any other bad line is one
line naming it."""

import json

import pytest

from colorjax.configs import Loop
from colorjax.errors import UsageError
from colorjax.train import metrics_log
from tests import commands
from tests.train import tiny_run

WHOLE = ''.join(json.dumps({'step': k, 'loss': 1.0 / (k + 1)}) + '\n' for k in range(3))


@pytest.mark.parametrize('name', [metrics_log.TRAIN_FILE, metrics_log.EVAL_FILE])
def test_a_torn_last_line_is_dropped_with_a_notice_and_cut_from_the_file(tmp_path, capsys,
                                                                         name):
  path = tmp_path / name
  path.write_text(WHOLE + '{"step": 3, "lo')
  assert [r['step'] for r in metrics_log.read_metrics(tmp_path, name)] == [0, 1, 2]
  log = metrics_log.MetricsLog(path, resume_step=2)
  log.write([{'step': 2, 'loss': 0.5}])
  assert [json.loads(line)['step'] for line in path.read_text().splitlines()] == [0, 1, 2]
  notices = commands.shown(capsys.readouterr().err)
  assert len(notices) == 2 and all(f'the last line of {path} was cut short' in n
                                   for n in notices)


def test_a_last_row_whose_newline_was_not_written_is_kept(tmp_path, capsys):
  path = tmp_path / metrics_log.TRAIN_FILE
  path.write_text(WHOLE.rstrip('\n'))
  metrics_log.MetricsLog(path, resume_step=3).write([{'step': 3}])
  assert [json.loads(line)['step'] for line in path.read_text().splitlines()] == [0, 1, 2, 3]
  assert capsys.readouterr().err == ''


def test_a_bad_line_before_the_last_is_a_usage_error(tmp_path):
  path = tmp_path / metrics_log.TRAIN_FILE
  path.write_text('{"step": 0}\nnot json\n{"step": 2}\n')
  with pytest.raises(UsageError, match='metrics.jsonl, line 2, is not JSON'):
    metrics_log.MetricsLog(path, resume_step=1)


@pytest.mark.parametrize('line', ['{"loss": 0.5}', '{"step": "3"}', '[3]', '{"step": true}'])
@pytest.mark.parametrize('last', [False, True])
def test_a_json_line_that_is_not_a_row_with_a_step_is_a_usage_error(tmp_path, line, last):
  path = tmp_path / metrics_log.TRAIN_FILE
  path.write_text(WHOLE + line + ('' if last else '\n{"step": 4}\n'))
  with pytest.raises(UsageError, match=r'metrics.jsonl, line 4, is not a row with an integer '
                     '"step": it was edited or damaged; delete that line'):
    metrics_log.MetricsLog(path, resume_step=1)


def test_a_run_resumes_over_a_torn_log(tmp_path, capsys):
  tiny_run.fit(tmp_path, Loop(4, checkpoint_every=4, log_every=1))
  with (tmp_path / metrics_log.TRAIN_FILE).open('a') as f:
    f.write('{"step": 4, "loss": 0.12')  # the disk filled here; then the run was killed
  tiny_run.fit(tmp_path, Loop(6, checkpoint_every=2, log_every=1))
  assert [r['step'] for r in metrics_log.read_metrics(tmp_path)] == list(range(6))
  assert 'was cut short' in capsys.readouterr().err
