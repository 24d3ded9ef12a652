"""The public API (colorjax.load) against what `run.py colorize` writes: a notebook and the
command line see the same pixels; a run's network restored from any workdir."""

import numpy as np
import PIL.Image
import pytest
import skimage.color
import skimage.data

import colorjax
from colorjax.cli import colorize
from colorjax.data import images
from colorjax.errors import UsageError


def test_load_colorizes_an_array_as_the_command_line_writes_it(zhang_run, tmp_path):
  root, _, _ = zhang_run
  photo = images.resize_rgb(skimage.data.astronaut(), (45, 67))
  PIL.Image.fromarray(photo).save(tmp_path / 'astronaut.png')
  assert colorize.main([f'--workdir={root}', str(tmp_path / 'astronaut.png'),
                        f'--out={tmp_path / "out"}', '--temperature=0.5']) == 0
  written = np.asarray(PIL.Image.open(tmp_path / 'out' / 'astronaut.png'))
  c = colorjax.load(root, temperature=0.5)
  rgb = c(photo)
  assert rgb.dtype == np.uint8 and rgb.shape == photo.shape
  np.testing.assert_array_equal(rgb, written)
  gray = c(skimage.color.rgb2gray(photo))  # HxW float in [0, 1]
  assert gray.shape == photo.shape


def test_predict_ab_gives_ab_at_the_network_output_size(zhang_run):
  root, _, _ = zhang_run
  c = colorjax.load(root)
  lightness = np.random.default_rng(0).uniform(0, 100, (3, 64, 48)).astype(np.float32)
  ab = c.predict_ab(lightness)
  assert ab.shape == (3, 16, 12, 2)  # the Zhang network works at 1/4 resolution
  # Each image is coloured on its own: the same L alone gives the same ab.
  np.testing.assert_allclose(c.predict_ab(lightness[1:2])[0], ab[1], atol=1e-4)
  assert np.abs(ab).max() > 1  # colours, not gray


def test_load_names_a_missing_run_in_one_line(tmp_path):
  with pytest.raises(UsageError, match='holds no run'):
    colorjax.load(tmp_path)


def test_size_changes_what_the_network_sees_not_the_output(zhang_run):
  root, _, _ = zhang_run
  photo = images.resize_rgb(skimage.data.astronaut(), (90, 140))
  small, large = colorjax.load(root, size=32)(photo), colorjax.load(root, size=96)(photo)
  assert small.shape == large.shape == photo.shape
  assert not np.array_equal(small, large)
