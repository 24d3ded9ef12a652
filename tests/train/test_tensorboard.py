"""TensorBoard event files: the metrics rows and the eval images, read back by hand."""

import struct

import pytest

from colorjax.configs import Loop
from colorjax.train import tensorboard
from tests.train import tiny_run


def _events(folder):
  """(tag, step, value or None for an image) of every summary in the event files: TFRecord
  framing (length, its CRC, the Event, its CRC) read by hand, the Event parsed with
  tensorboardX's own protobuf classes."""
  from tensorboardX.proto import event_pb2
  found = []
  for path in sorted(folder.glob('events.out.tfevents.*')):
    raw = path.read_bytes()
    while raw:
      length, = struct.unpack('<Q', raw[:8])
      event = event_pb2.Event.FromString(raw[12:12 + length])
      raw = raw[12 + length + 4:]
      for value in event.summary.value:
        found.append((value.tag, event.step,
                      None if value.HasField('image') else value.simple_value))
  return found


def test_tensorboard_holds_the_rows_and_eval_images(tmp_path):
  """(Written without TensorFlow: the end-to-end program tests run every family, TensorBoard
  included, with TensorFlow hidden; here another test may have imported it.)"""
  pytest.importorskip('tensorboardX')
  tiny_run.fit(tmp_path, Loop(8, checkpoint_every=2, log_every=1, eval_every=2),
               eval_fn=tiny_run.score)
  events = _events(tmp_path / tensorboard.FOLDER)
  train_rows = tiny_run.rows(tmp_path / 'metrics.jsonl')
  assert [(s, v) for t, s, v in events if t == 'train/loss'] == [
      (r['step'], pytest.approx(r['loss'])) for r in train_rows]
  for tag in ('train/learning_rate', 'train/images_per_second', 'train/step_time_ms',
              'train/steps_per_second'):
    assert [s for t, s, _ in events if t == tag] == list(range(8))
  assert [s for t, s, _ in events if t == 'eval/score'] == [2, 4, 6, 8]
  assert [s for t, s, v in events if t == 'eval/samples' and v is None] == [2, 4, 6, 8]
