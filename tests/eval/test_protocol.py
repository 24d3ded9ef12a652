"""The val5k protocol: torchvision's Resize(256) + CenterCrop(256) geometry, the images taken
by file name from ImageNet's validation set (tfds mock data), Inception features gathered in
padded batches, and `run.py evaluate --protocol=val5k` end to end: the run's row beside the
published ones, with and without FID weights."""

import functools
import json

import jax
import numpy as np
import PIL.Image
import pytest
import skimage.data
from flax import traverse_util

from colorjax import configs
from colorjax.data import images, sources
from colorjax.eval import fid, protocol
from colorjax.models import inception
from tests import commands, saved_runs


@pytest.mark.parametrize('shape, resized, corner', [
    ((300, 400), (256, 341), (0, 42)),    # landscape: 256 * 400 / 300 = 341.3, round(42.5)
    ((500, 333), (384, 256), (64, 0)),    # portrait: 256 * 500 / 333 = 384.4
    ((256, 256), (256, 256), (0, 0)),     # already square: untouched
    ((100, 180), (256, 460), (0, 102)),   # smaller: enlarged, 256 * 1.8 = 460.8
])
def test_square_is_torchvision_resize_then_center_crop(shape, resized, corner):
  """The sizes and offsets below are torchvision's, worked by hand: Resize(256) truncates the
  long side, CenterCrop(256) offsets by round((n - 256) / 2)."""
  rgb = images.resize_rgb(skimage.data.astronaut(), shape)
  expected = PIL.Image.fromarray(rgb).resize(resized[::-1], PIL.Image.BILINEAR)
  top, left = corner
  expected = np.asarray(expected)[top:top + 256, left:left + 256]
  np.testing.assert_array_equal(protocol.square(rgb), expected)


def test_square_keeps_the_centre():
  """A gray image with a red dot at its centre keeps the dot at the crop's centre."""
  rgb = np.full((300, 500, 3), 128, np.uint8)
  rgb[145:155, 245:255] = (255, 0, 0)
  out = protocol.square(rgb)
  ys, xs = np.nonzero((out[..., 0] > 200) & (out[..., 1] < 60))
  assert abs(ys.mean() - 127.5) < 1.5 and abs(xs.mean() - 127.5) < 1.5


def test_imagenet_validation_images_are_taken_by_file_name():
  """The default source is ImageNet's validation split, whose tfds order is not the files':
  the protocol takes the first `count` by file name (ILSVRC2012_val_00000001, ...)."""
  tfds = pytest.importorskip('tensorflow_datasets')
  with tfds.testing.mock_data(num_examples=9, policy=tfds.testing.MockPolicy.USE_CODE):
    taken = list(protocol.named_photos([], None, count=4))
    source = sources.load_source(configs.data_config(source='imagenet2012'), 'eval')
    by_name = sorted(range(len(source)), key=source.file_name)
    wanted = [(source.file_name(i), protocol.square(source[i]['image'])) for i in by_name[:4]]
  assert [name for name, _ in taken] == [name for name, _ in wanted]
  for (_, got), (_, expected) in zip(taken, wanted):
    np.testing.assert_array_equal(got, expected)


def test_a_folder_source_gives_all_its_files_in_order(tmp_path):
  """--source=folder:PATH with the protocol: every file of the folder (no evaluation split
  held out), in sorted order, the first `count`, each squared."""
  folder = tmp_path / 'photos'
  _photos(folder)
  taken = list(protocol.named_photos([], f'folder:{folder}', count=4))
  assert [name for name, _ in taken] == [str(folder / f'{i}.png') for i in range(4)]
  for i, (_, rgb) in enumerate(taken):
    np.testing.assert_array_equal(rgb, protocol.square(images.read_rgb(folder / f'{i}.png')))
  assert len(list(protocol.named_photos([], f'folder:{folder}'))) == 6


@pytest.mark.slow
def test_fid_features_in_padded_batches_are_those_of_all_at_once(monkeypatch):
  """Features are computed FID_BATCH photo pairs at a time, outputs and originals
  interleaved, the last batch padded: their statistics equal those of every image's features
  computed in another grouping (the outputs, then the originals, then padding)."""
  monkeypatch.setattr(protocol, 'FID_BATCH', 2)
  rng = np.random.default_rng(0)
  pairs = [tuple(rng.integers(0, 256, (2, 40, 40, 3), np.uint8)) for _ in range(3)]
  features = protocol.FidFeatures(_random_inception())
  for output, truth in pairs:
    features.add(output, truth)
  distance = features.distance()
  everything = np.stack([o for o, _ in pairs] + [t for _, t in pairs] + [pairs[0][0]] * 2)
  computed = np.concatenate([features.features(everything[:4]), features.features(everything[4:])])
  outputs, truths = computed[:3], computed[3:6]
  np.testing.assert_allclose(features.outputs.mean(), outputs.mean(0), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(features.truths.covariance(), np.cov(truths, rowvar=False),
                             rtol=1e-4, atol=1e-8)
  expected = fid.frechet_distance(outputs.mean(0), np.cov(outputs, rowvar=False),
                                  truths.mean(0), np.cov(truths, rowvar=False))
  np.testing.assert_allclose(distance, expected, rtol=1e-4)


def _photos(folder):
  """Five colour photos of several sizes and a gray one, as files."""
  folder.mkdir()
  for i, name in enumerate(('astronaut', 'coffee', 'chelsea', 'rocket', 'astronaut')):
    rgb = images.resize_rgb(getattr(skimage.data, name)(), (90 + 10 * i, 120 - 5 * i))
    PIL.Image.fromarray(rgb).save(folder / f'{i}.png')
  PIL.Image.fromarray(skimage.data.camera()[:100, :130]).convert('RGB').save(folder / '5.png')


@pytest.fixture(scope='module')
def run(tmp_path_factory):
  return saved_runs.ablation_run(tmp_path_factory.mktemp('run'))


@functools.cache
def _random_inception():
  """Inception-v3 with He-normal kernels and BatchNorm at mean 0, variance 1: finite,
  image-dependent features. Drawn by NumPy: Flax's init of 22M parameters takes 10 s here."""
  rng = np.random.default_rng(0)

  def draw(path, leaf):
    name = path[-1].key
    if name == 'kernel':
      return rng.normal(0, np.sqrt(2 / np.prod(leaf.shape[:-1])), leaf.shape).astype(np.float32)
    return np.full(leaf.shape, 1.0 if name in ('scale', 'var') else 0.0, np.float32)

  return jax.tree_util.tree_map_with_path(draw, inception.abstract_variables())


@pytest.mark.slow
def test_evaluate_with_the_protocol_writes_the_row_beside_the_published_ones(
    run, tmp_path, monkeypatch, capsys):
  monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'cache'))  # no FID weights there
  monkeypatch.setattr(protocol, 'FID_BATCH', 2)
  _photos(tmp_path / 'photos')
  code, err = commands.run_in_process(
      capsys, 'evaluate', f'--workdir={run}', '--protocol=val5k', tmp_path / 'photos',
      f'--out={tmp_path / "no_fid"}', '--bootstrap=100')
  assert code == 0 and 'FID left out' in err and 'import_weights' in err
  record = json.loads((tmp_path / 'no_fid' / 'evaluation.json').read_text())
  assert record['protocol'] == {'name': 'val5k', 'fid': None}
  assert len(record['photos']) == 6  # the gray one counts, as in the field's scripts
  report = (tmp_path / 'no_fid' / 'evaluation.md').read_text()
  for published in protocol.PUBLISHED:
    assert f'| {published.method} | {published.fid:.2f} |' in report
  assert 'DDColor' in report and '| n/a |' in report
  model = record['metrics']['model']
  assert model['colorfulness_delta']['value'] == pytest.approx(
      abs(model['colorfulness_pred']['value'] - model['colorfulness_true']['value']))

  weights = tmp_path / 'inception.npz'
  np.savez(weights, **traverse_util.flatten_dict(_random_inception(), sep='/'))
  code, err = commands.run_in_process(
      capsys, 'evaluate', f'--workdir={run}', '--protocol=val5k', tmp_path / 'photos',
      f'--out={tmp_path / "fid"}', '--bootstrap=100', f'--fid_weights={weights}')
  assert code == 0 and 'FID left out' not in err
  value = json.loads((tmp_path / 'fid' / 'evaluation.json').read_text())['protocol']['fid']
  assert np.isfinite(value) and value > 0
  assert f'| {value:.2f} |' in (tmp_path / 'fid' / 'evaluation.md').read_text()


def test_protocol_mistakes_are_one_line(run, tmp_path, capsys):
  (tmp_path / 'bad.npz').write_bytes(b'not an npz')
  code, err = commands.run_in_process(
      capsys, 'evaluate', f'--workdir={run}', '--protocol=val5k', tmp_path,
      f'--fid_weights={tmp_path / "bad.npz"}')
  commands.assert_one_line(code, err, 'cannot be read as Inception-v3 weights')
  code, err = commands.run_in_process(
      capsys, 'evaluate', f'--workdir={run}', tmp_path, f'--fid_weights={tmp_path / "x.npz"}')
  commands.assert_one_line(code, err, '--fid_weights goes with --protocol=val5k')


def test_the_protocol_refuses_photos_that_are_all_gray(run, tmp_path, monkeypatch, capsys):
  """The protocol counts gray photos beside colour ones, but with none in colour its colour
  figures are undefined (an ab-std ratio over an ab std of 0, a gray baseline that is exact):
  refused as evaluate refuses them without the protocol."""
  monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'cache'))  # no FID weights there
  folder = tmp_path / 'gray'
  folder.mkdir()
  gray = skimage.data.camera()[:100, :130]
  PIL.Image.fromarray(gray).save(folder / 'l.png')
  PIL.Image.fromarray(gray).convert('RGB').save(folder / 'rgb.png')
  code, err = commands.run_in_process(
      capsys, 'evaluate', f'--workdir={run}', '--protocol=val5k', folder,
      f'--out={tmp_path / "eval"}', '--bootstrap=100')
  shown = [line for line in commands.shown(err) if not line.startswith('FID left out')]
  commands.assert_one_line(code, '\n'.join(shown), '2 gray photo(s) (every |a|, |b| <= ')
  assert 'and none with colour: pass colour photos' in shown[0]
  assert not (tmp_path / 'eval' / 'evaluation.json').exists()
