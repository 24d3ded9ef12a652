"""The public API (colorjax.load) against what `run.py colorize` writes: a notebook and the
command line see the same pixels; a run's network restored from any workdir."""

import io

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
  with pytest.raises(ValueError, match='holds no run') as error:  # an argument mistake
    colorjax.load(tmp_path)
  assert isinstance(error.value, UsageError)  # one line from run.py


@pytest.mark.slow
def test_size_changes_what_the_network_sees_not_the_output(zhang_run):
  root, _, _ = zhang_run
  photo = images.resize_rgb(skimage.data.astronaut(), (90, 140))
  small, large = colorjax.load(root, size=32)(photo), colorjax.load(root, size=96)(photo)
  assert small.shape == large.shape == photo.shape
  assert not np.array_equal(small, large)


@pytest.mark.parametrize('arguments, error, message', [
    ({'temperature': float('nan')}, ValueError, 'temperature=nan: .* finite and > 0'),
    ({'temperature': 0}, ValueError, 'temperature=0: '),
    ({'temperature': -1.0}, ValueError, 'temperature=-1.0: '),
    ({'temperature': '0.5'}, TypeError, "temperature='0.5': pass a number"),
    ({'samples': 0}, ValueError, 'samples=0 must be at least 1'),
    ({'samples': 2.0}, TypeError, 'samples=2.0: pass an int'),
    ({'seed': None}, TypeError, 'seed=None: pass an int'),
    ({'network': 3}, TypeError, 'network=3: pass a name'),
    ({'size': 'abc'}, TypeError, "size='abc': pass a short side N or"),
    ({'size': -5}, ValueError, 'size=-5: each side must be 1 to'),
    ({'size': (0, 0)}, ValueError, r'size=\(0, 0\): each side'),
    ({'size': 100000}, ValueError, 'MAX_WORKING_SIDE'),
    ({'pipeline': 'published', 'size': 64}, ValueError,
     "size=64 does not apply to pipeline='published': .*; leave size out"),
])
def test_load_checks_its_arguments_before_reading_the_run(tmp_path, arguments, error, message):
  with pytest.raises(error, match=message):
    colorjax.load(tmp_path, **arguments)  # no run there: checked first, or 'holds no run'


@pytest.fixture(scope='module')
def colorizer(zhang_run):
  return colorjax.load(zhang_run[0])


def test_a_colorizer_takes_every_documented_convention_alike(colorizer, tmp_path):
  photo = images.resize_rgb(skimage.data.coffee(), (24, 40))
  PIL.Image.fromarray(photo).save(tmp_path / 'coffee.png')
  expected = colorizer(photo)
  alpha = np.full((24, 40, 1), 7, np.uint8)
  encoded = (tmp_path / 'coffee.png').read_bytes()
  same = {'uint16': photo.astype(np.uint16) * 257, 'float': photo / 255.0,
          'rgba': np.concatenate([photo, alpha], -1), 'str': str(tmp_path / 'coffee.png'),
          'path': tmp_path / 'coffee.png', 'PIL': PIL.Image.fromarray(photo),
          'bytes': encoded, 'bytearray': bytearray(encoded), 'file': io.BytesIO(encoded)}
  for name, image in same.items():
    np.testing.assert_array_equal(colorizer(image), expected, err_msg=name)
  gray = photo[..., 1]
  for image in (PIL.Image.fromarray(gray), PIL.Image.fromarray(gray.astype(np.uint16) * 257)):
    assert image.mode in ('L', 'I;16')
    np.testing.assert_array_equal(colorizer(image), colorizer(gray), err_msg=image.mode)


def test_a_pil_image_of_any_mode_is_read_as_its_colours(colorizer):
  """A palette image's array holds indices into its palette, a CMYK one's four inks."""
  colours = np.array([[200, 30, 40], [20, 180, 60], [30, 60, 220], [240, 220, 30]], np.uint8)
  indices = np.arange(24 * 40).reshape(24, 40) // 7 % 4
  palette = PIL.Image.fromarray(indices.astype(np.uint8), 'P')
  palette.putpalette(colours.ravel())
  np.testing.assert_array_equal(colorizer(palette), colorizer(colours[indices]))
  cmyk = PIL.Image.fromarray(colours[indices]).convert('CMYK')
  np.testing.assert_array_equal(colorizer(cmyk), colorizer(np.asarray(cmyk.convert('RGB'))))


@pytest.mark.parametrize('image', [['a', 'b'], np.array(['coffee.png']), {'rgb': 1}, None])
def test_a_colorizer_names_what_it_takes_for_what_is_not_an_image(colorizer, image):
  with pytest.raises(TypeError, match='a colorizer takes an image array .*, a PIL image, or an '
                     'image file: its path, its bytes or a binary file object; not a '):
    colorizer(image)


@pytest.mark.parametrize('image, error, message', [
    (np.full((8, 8, 3), 200.0), ValueError, 'divide a 0-255 image by 255'),
    (np.zeros((8, 8, 3)) - 0.5, ValueError, r'\[0, 1\] \(found -0.5..-0.5\)'),
    (np.full((8, 8), 4000, np.int16), TypeError, 'dtype int16'),
    (np.zeros((0, 0, 3), np.uint8), ValueError, 'has no pixels'),
    (np.zeros((3, 100000), np.uint8), ValueError, 'MAX_WORKING_SIDE'),
])
def test_a_colorizer_refuses_other_images_with_the_fix(colorizer, image, error, message):
  with pytest.raises(error, match=message):
    colorizer(image)


def test_a_colorizer_refuses_an_array_over_the_pixel_budget(colorizer, monkeypatch):
  monkeypatch.setattr(images, 'MAX_PIXELS', 8 * 8 - 1)
  with pytest.raises(ValueError, match='megapixel budget'):
    colorizer(np.zeros((8, 8, 3), np.uint8))


def test_predict_ab_takes_one_image_and_refuses_what_is_not_lightness(colorizer):
  lightness = np.random.default_rng(1).uniform(0, 100, (2, 32, 24))
  np.testing.assert_allclose(colorizer.predict_ab(lightness[0]),
                             colorizer.predict_ab(lightness)[0], atol=1e-4)
  refused = [(lightness[..., None], ValueError, r'\(N, H, W\) or \(H, W\)'),
             (lightness * 2.55, ValueError, r'L in \[0, 100\]'),
             (np.zeros((0, 8, 8)), ValueError, r'not \(0, 8, 8\)'),
             (lightness > 50, TypeError, 'not bool'),
             (np.zeros((1, 8, 4000)), ValueError, 'MAX_WORKING_SIDE')]
  for value, error, message in refused:
    with pytest.raises(error, match=message):
      colorizer.predict_ab(value)
