"""colorjax.color against scikit-image (float64) and closed forms."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import skimage.color
import skimage.data

from colorjax import color


def _random_rgb(n=100_000, seed=0):
  return np.random.default_rng(seed).random((n, 3))


def _cube_extremes():
  """The 8 corners, every edge and face sampled at 17 levels, and the 0.04045 knee."""
  levels = np.concatenate([np.linspace(0, 1, 17), [0.04045, 0.04046, 0.0031308]])
  grid = np.stack(np.meshgrid(levels, levels, levels, indexing='ij'), -1).reshape(-1, 3)
  on_surface = np.any((grid == 0) | (grid == 1), axis=-1)
  return grid[on_surface]


def _photos():
  return [skimage.data.coffee(), skimage.data.astronaut(), skimage.data.chelsea()]


def _max_abs(a, b):
  return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


@pytest.mark.parametrize('rgb', [_random_rgb(), _cube_extremes()], ids=['random', 'extremes'])
def test_rgb_to_lab_matches_skimage(rgb):
  ours = jax.jit(color.rgb_to_lab)(jnp.asarray(rgb, jnp.float32))
  assert ours.dtype == jnp.float32
  assert _max_abs(ours, skimage.color.rgb2lab(rgb)) <= 1e-3


@pytest.mark.parametrize('photo', _photos(), ids=['coffee', 'astronaut', 'chelsea'])
def test_photos_match_skimage_and_round_trip(photo):
  rgb = photo.astype(np.float32) / 255.0
  lab = color.rgb_to_lab(rgb)
  assert _max_abs(lab, skimage.color.rgb2lab(photo)) <= 1e-3
  assert _max_abs(color.lab_to_rgb(lab), rgb) <= 1e-4


def _every_8bit_colour(chunks):
  """The 2^24 8-bit colours as a 4096 x 4096 uint8 image, split into `chunks` strips."""
  code = np.arange(2 ** 24, dtype=np.uint32)
  rgb = np.stack([code >> 16, (code >> 8) & 255, code & 255], -1).astype(np.uint8)
  return np.split(rgb.reshape(4096, 4096, 3), chunks)


def test_lab_from_uint8_matches_skimage_on_every_8bit_colour():
  """a = 500 (fx - fy) magnifies float32's rounding of f ~ 1 to 3e-5 per ulp: the bound
  leaves the cube root about an ulp."""
  convert = jax.jit(color.lab_from_uint8)
  worst = max(_max_abs(convert(rgb), skimage.color.rgb2lab(rgb)) for rgb in _every_8bit_colour(16))
  assert worst <= 1e-4


def test_cube_root_within_an_ulp():
  """The Lab bounds above rest on it, from the Lab epsilon (its smallest argument) on."""
  t = np.exp(np.random.default_rng(4).uniform(np.log(0.008856), np.log(1e3), 1_000_000))
  t = t.astype(np.float32)
  exact = np.cbrt(t.astype(np.float64))
  error = np.abs(np.asarray(jax.jit(color._cbrt)(t), np.float64) - exact)
  assert np.max(error / np.spacing(exact.astype(np.float32))) <= 1


def test_rgb_to_lab_gradient_matches_skimage_finite_differences():
  rgb = _random_rgb(200, seed=5)
  ours = jax.vmap(jax.jacfwd(color.rgb_to_lab))(jnp.asarray(rgb, jnp.float32))
  h = 1e-6
  expected = np.stack([(skimage.color.rgb2lab(rgb + h * step)
                        - skimage.color.rgb2lab(rgb - h * step)) / (2 * h)
                       for step in np.eye(3)], -1)  # [colour, Lab channel, RGB channel]
  np.testing.assert_allclose(ours, expected, rtol=1e-3, atol=1e-2)
  edges = jnp.asarray([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [0.04045, 0.5, 0.0]])
  assert np.all(np.isfinite(jax.jacrev(color.rgb_to_lab)(edges)))


@pytest.mark.parametrize('rgb', [_random_rgb(), _cube_extremes()], ids=['random', 'extremes'])
def test_rgb_lab_round_trip(rgb):
  rgb32 = jnp.asarray(rgb, jnp.float32)
  assert _max_abs(color.lab_to_rgb(color.rgb_to_lab(rgb32)), rgb) <= 1e-4


def test_lab_to_rgb_matches_skimage_including_out_of_gamut():
  rng = np.random.default_rng(1)
  lab = np.stack([rng.uniform(0, 100, 100_000), rng.uniform(-128, 127, 100_000),
                  rng.uniform(-128, 127, 100_000)], -1)
  with warnings.catch_warnings():
    warnings.simplefilter('ignore')  # skimage warns about the negative Z it clips
    expected = skimage.color.lab2rgb(lab)
  ours = color.lab_to_rgb(jnp.asarray(lab, jnp.float32))
  out_of_gamut = np.any((expected == 0) | (expected == 1), axis=-1)
  assert out_of_gamut.mean() > 0.5  # the test really exercises clipping
  assert float(ours.min()) >= 0.0 and float(ours.max()) <= 1.0
  assert _max_abs(ours, expected) <= 1e-4


def _skimage_round_trip(lab):
  """Lab -> RGB -> Lab by scikit-image: the identity exactly for colours inside sRGB."""
  with warnings.catch_warnings():
    warnings.simplefilter('ignore')  # negative Z of far out-of-gamut colours
    return skimage.color.rgb2lab(skimage.color.lab2rgb(np.asarray(lab, np.float64)))


def _random_lab(n, seed):
  rng = np.random.default_rng(seed)
  return np.stack([rng.uniform(0, 100, n), rng.uniform(-128, 127, n),
                   rng.uniform(-128, 127, n)], -1).astype(np.float32)


def test_fit_chroma_to_gamut_keeps_l_and_hue_and_lands_on_the_gamut_edge():
  lab = _random_lab(20_000, seed=2)
  fitted = np.asarray(jax.jit(color.fit_chroma_to_gamut)(lab), np.float64)
  np.testing.assert_array_equal(fitted[:, 0], lab[:, 0])  # L untouched
  scale = np.linalg.norm(fitted[:, 1:], axis=-1) / np.linalg.norm(lab[:, 1:], axis=-1)
  np.testing.assert_allclose(fitted[:, 1:], scale[:, None] * lab[:, 1:], atol=1e-3)  # same hue
  assert np.all(scale <= 1 + 1e-6) and (scale < 0.99).mean() > 0.5  # most needed fitting
  # Inside the gamut: scikit-image's round trip gives the colour back (and so its L).
  assert _max_abs(_skimage_round_trip(fitted), fitted) < 0.03
  # ... and not by more than needed: 1% more chroma leaves the gamut (bar the rim at 0 or 100).
  fitted_more = np.concatenate([fitted[:, :1], np.minimum(1.0, scale[:, None] * 1.01)
                                * lab[:, 1:]], -1)
  shrunk = (scale < 0.99) & (lab[:, 0] > 1) & (lab[:, 0] < 99)
  moved = np.abs(_skimage_round_trip(fitted_more) - fitted_more).max(-1)
  assert np.all(moved[shrunk] > 0.005)


def test_fit_chroma_to_gamut_leaves_colors_inside_alone():
  lab = color.rgb_to_lab(jnp.asarray(_random_rgb(20_000, seed=3), jnp.float32))
  np.testing.assert_allclose(color.fit_chroma_to_gamut(lab), lab, atol=1e-3)


def test_any_leading_shape_and_vmap():
  rgb = jnp.asarray(_random_rgb(2 * 3 * 4 * 5).reshape(2, 3, 4, 5, 3), jnp.float32)
  lab = color.rgb_to_lab(rgb)
  assert lab.shape == rgb.shape
  # Lab up to 100 in float32: 1e-4 is a few ulps; fusions differ between these shapes.
  np.testing.assert_allclose(jax.vmap(color.rgb_to_lab)(rgb), lab, atol=1e-4)
  np.testing.assert_allclose(color.rgb_to_lab(rgb[1, 2]), lab[1, 2], atol=1e-4)
  rgb_uint8 = np.round(np.asarray(rgb) * 255).astype(np.uint8)
  lab = color.lab_from_uint8(rgb_uint8)
  np.testing.assert_allclose(lab, color.rgb_to_lab(rgb_uint8 / 255.0), atol=1e-4)
  np.testing.assert_allclose(jax.vmap(color.lab_from_uint8)(rgb_uint8), lab, atol=1e-4)
  np.testing.assert_allclose(color.lab_from_uint8(rgb_uint8[1, 2, 3, 4]), lab[1, 2, 3, 4],
                             atol=1e-4)


def test_gray_lightness_closed_form():
  """Gray has Y = linear(0.5) exactly (matrix rows sum to the white point's Y = 1), so
  L = 116 * cbrt(((0.5 + 0.055) / 1.055) ** 2.4) - 16."""
  linear = ((0.5 + 0.055) / 1.055) ** 2.4
  expected_l = 116 * np.cbrt(linear) - 16
  lab = color.rgb_to_lab(jnp.full((3,), 0.5))
  assert abs(float(lab[0]) - expected_l) < 1e-4


@pytest.mark.parametrize('rgb', [_random_rgb(), _photos()[0] / 255.0], ids=['random', 'coffee'])
def test_yuv_matches_skimage_and_round_trips(rgb):
  """Ours is derived from the BT.601 definition (Umax = 0.436, Vmax = 0.615); scikit-image's
  published matrix rounds a few coefficients differently (U from B: 0.43601035), which
  moves U and V by at most 2.5e-5, 160x below one 8-bit level."""
  yuv = jax.jit(color.rgb_to_yuv)(jnp.asarray(rgb, jnp.float32))
  assert _max_abs(yuv, skimage.color.rgb2yuv(rgb)) <= 5e-5
  assert _max_abs(color.yuv_to_rgb(yuv), rgb) <= 1e-5


# BT.601 as published (Y, U, V rows; R, G, B columns), rounded to 5 digits.
BT601_PUBLISHED = np.array([[0.299, 0.587, 0.114],
                            [-0.14713, -0.28886, 0.436],
                            [0.615, -0.51499, -0.10001]])


def test_yuv_matrix_matches_the_published_coefficients():
  """Each primary's YUV is one column of the matrix, so a coefficient in the wrong place
  (the write-up's U took 0.436 x G instead of 0.436 x B) cannot pass."""
  yuv_of_primaries = np.asarray(color.rgb_to_yuv(jnp.eye(3)))
  np.testing.assert_allclose(yuv_of_primaries.T, BT601_PUBLISHED, atol=1e-5)


HAND_COMPUTED = {  # Lab (50, 110, -64) normalized by each scheme's formula
    'none': (50, 110, -64),
    'unit': (0.5, 110 / 128, -0.5),
    'centered': (0, 1, -64 / 110),
    'pix2pix': (0, 1, -64 / 110),
    'shifted': (0.5, 238 / 255, 64 / 255),
}


@pytest.mark.parametrize('name', sorted(color.NORMALIZATIONS))
def test_normalizations(name):
  norm = color.NORMALIZATIONS[name]
  lab = jnp.asarray([50.0, 110.0, -64.0])
  np.testing.assert_allclose(norm.normalize(lab), HAND_COMPUTED[name], rtol=1e-6)
  photo_lab = color.rgb_to_lab(jnp.asarray(_photos()[0] / 255.0, jnp.float32))
  np.testing.assert_allclose(norm.denormalize(norm.normalize(photo_lab)), photo_lab, atol=1e-4)


def test_all_schemes_are_tested():
  assert set(HAND_COMPUTED) == set(color.NORMALIZATIONS)


# The inverse Cao et al.'s release publishes (utils_new.cvtYUV2RGB): rows U, V of its
# matrix, 0..255 units, as printed there. Ours is the exact inverse of their forward matrix.
RELEASE_RGB_FROM_CBCR = np.array([[-0.00093, -0.3437, 1.77216],
                                  [1.401687, -0.71417, 0.00099]])


def test_scaled_ycbcr_decodes_as_the_release_publishes():
  """The release's published inverse (its own rounding, an independent table) applied to
  our encoding's 0..255 values gives back the RGB, to its 5-6 printed digits."""
  rgb = _random_rgb(10_000)
  scaled = np.asarray(color.rgb_to_scaled_ycbcr(jnp.asarray(rgb)), np.float64)
  y, cbcr = (scaled[:, :1] + 1) * 127.5, scaled[:, 1:] * 127.5
  rgb_255 = y + cbcr @ RELEASE_RGB_FROM_CBCR
  assert _max_abs(rgb_255 / 255, rgb) <= 5e-5
  assert _max_abs(color.scaled_ycbcr_to_rgb(scaled), rgb) <= 1e-5


def test_scaled_ycbcr_is_jpeg_full_range_ycbcr():
  """Against Pillow's JPEG YCbCr (full range, centred on 128, exact coefficients, 8-bit):
  within its rounding, the 0.5 offset of centring on 127.5, and the release's 3-decimal
  coefficients (< 0.1 of 255)."""
  import PIL.Image
  rgb_uint8 = _photos()[0]
  pillow = np.asarray(PIL.Image.fromarray(rgb_uint8).convert('YCbCr'), np.float64)
  scaled = np.asarray(color.rgb_to_scaled_ycbcr(rgb_uint8 / 255.0), np.float64)
  ours = (scaled + [1, 1, 1]) * 127.5 + [0, 0.5, 0.5]  # 0..255, chroma centred on 128
  assert _max_abs(ours, pillow) <= 1.1
  assert _max_abs(scaled, np.clip(scaled, -1, 1)) == 0  # every channel within [-1, 1]
