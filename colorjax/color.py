"""Colour spaces in pure jnp: sRGB <-> CIE Lab (D65, 2 degree observer), RGB <-> YUV (BT.601
and the YCbCr of Cao et al.'s release).

Every function maps arrays of shape (..., 3) with float RGB in [0, 1] and works under jit
and vmap, so the same code converts on device in training, evaluation and inference. The
constants follow scikit-image, the reference the tests hold these functions to.
"""

import functools
from typing import Callable, NamedTuple

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

# sRGB primaries to CIE XYZ (as scikit-image's xyz_from_rgb) and the D65 white point.
_XYZ_FROM_RGB = np.array([[0.412453, 0.357580, 0.180423],
                          [0.212671, 0.715160, 0.072169],
                          [0.019334, 0.119193, 0.950227]])
_RGB_FROM_XYZ = np.linalg.inv(_XYZ_FROM_RGB)
_D65_WHITE = np.array([0.95047, 1.0, 1.08883])

# BT.601 luma weights and chroma ranges; U and V are scaled colour differences B-Y, R-Y.
_WR, _WB = 0.299, 0.114
U_MAX, V_MAX = 0.436, 0.615  # |U| and |V| never exceed these for RGB in [0, 1]
_YUV_FROM_RGB = np.array([
    [_WR, 1 - _WR - _WB, _WB],
    [-U_MAX * _WR / (1 - _WB), -U_MAX * (1 - _WR - _WB) / (1 - _WB), U_MAX],
    [V_MAX, -V_MAX * (1 - _WR - _WB) / (1 - _WR), -V_MAX * _WB / (1 - _WR)],
])
_RGB_FROM_YUV = np.linalg.inv(_YUV_FROM_RGB)

LAB_EPSILON = 0.008856  # (6/29)^3, rounded as in scikit-image
LAB_KAPPA = 7.787       # (29/6)^2 / 3, rounded as in scikit-image


def _matmul3(x, matrix):
  return x @ jnp.asarray(matrix.T, dtype=x.dtype)


def _float(x):
  x = jnp.asarray(x)
  return x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(jnp.float32)


def _srgb_to_linear(rgb, xp=jnp):
  # Clamped under the power so that its unused branch has a finite gradient at 0.
  power = ((xp.maximum(rgb, 0.04045) + 0.055) / 1.055) ** 2.4
  return xp.where(rgb > 0.04045, power, rgb / 12.92)


# XYZ over the white point from linear sRGB: one matrix, so each Lab channel is 3 multiply-adds.
LAB_XYZ_FROM_RGB = _XYZ_FROM_RGB / _D65_WHITE[:, None]
# Every term of that product for every 8-bit level, [xyz row, rgb channel, level], each rounded
# once to float32 from float64: the uint8 path is 9 table lookups and 6 adds per pixel.
_LAB_XYZ_TERMS_8BIT = (LAB_XYZ_FROM_RGB[:, :, None]
                       * _srgb_to_linear(np.arange(256) / 255.0, np)).astype(np.float32)


@jax.custom_jvp
def _cbrt(t):
  """Cube root of float32 t > 0 within 0.77 ulp (jnp.cbrt: 0.97), from multiplies and adds
  only: XLA:CPU's cbrt costs 7x numpy's, and a divide, exp or log used more than once stops
  XLA from fusing the conversion into one loop. A third of the exponent (the bit trick)
  gives 1/cbrt(t) within 4%; two Newton steps r (4 - t r^3) / 3 take it to 2e-5 and one step
  on y = t r^2 takes y to float32 precision."""
  bits = jax.lax.bitcast_convert_type(t, jnp.int32).astype(jnp.float32)
  r = jax.lax.bitcast_convert_type(
      np.int32(0x54A2FA8C) - (bits * np.float32(1 / 3)).astype(jnp.int32), jnp.float32)
  for _ in range(2):
    r = r * (4 - t * r * r * r) * np.float32(1 / 3)
  y = t * r * r
  return y + (t - y * y * y) * (r * r * np.float32(1 / 3))


@_cbrt.defjvp
def _cbrt_jvp(primals, tangents):
  (t,), (dt,) = primals, tangents
  y = _cbrt(t)
  return y, y / (3 * t) * dt


def _channels(x):
  """x (..., 3) -> its 3 channels, each broadcast back to (..., 3)."""
  return [jnp.broadcast_to(x[..., i:i + 1], x.shape) for i in range(3)]


def _lab_from_xyz(x, y, z):
  """XYZ over the white point, each (..., 3) and equal along the last axis (from _channels)
  -> Lab (..., 3). Every element computes its pixel's whole Lab and keeps channel k: XLA:CPU
  hoists the pixel's work out of the 3-long channel loop and vectorizes over pixels, writing
  the output in one pass. Stacking three (...) planes instead makes it write in three strided
  passes with scalar code, and recompute f(Y) in each."""
  fx, fy, fz = (jnp.where(t > LAB_EPSILON, _cbrt(jnp.maximum(t, LAB_EPSILON)),
                          LAB_KAPPA * t + 16.0 / 116.0) for t in (x, y, z))
  k = jax.lax.broadcasted_iota(jnp.int32, fx.shape, fx.ndim - 1)
  return jnp.where(k == 0, 116.0 * fy - 16.0, jnp.where(k == 1, 500.0 * (fx - fy),
                                                         200.0 * (fy - fz)))


def rgb_to_lab(rgb):
  """sRGB in [0, 1] -> Lab (L in [0, 100], a and b roughly in [-128, 127]), float32."""
  r, g, b = _channels(_srgb_to_linear(jnp.asarray(rgb, jnp.float32)))
  return _lab_from_xyz(*(r * m[0] + g * m[1] + b * m[2]
                         for m in LAB_XYZ_FROM_RGB.astype(np.float32)))


def _xyz_from_f(f):
  """CIE's inverse of f: t^3 above 6/29, its linear segment below (XYZ over the white)."""
  return jnp.where(f > 0.2068966, f ** 3, (f - 16.0 / 116.0) / LAB_KAPPA)


def _linear_rgb_planes(lightness, a, b):
  """L, a, b planes -> linear sRGB planes, unclipped: outside [0, 1] where the colour is out of
  gamut. Planes, not a (..., 3) array: XLA fuses them into one vectorized loop."""
  fy = (lightness + 16.0) / 116.0
  fz = jnp.maximum(fy - b / 200.0, 0.0)  # scikit-image clips negative Z to 0
  xyz = [_xyz_from_f(f) * white for f, white in zip((a / 500.0 + fy, fy, fz), _D65_WHITE)]
  return [sum(x * m for x, m in zip(xyz, row)) for row in _RGB_FROM_XYZ.astype(np.float32)]


def _lab_to_linear_rgb(lab):
  """Lab -> linear sRGB, unclipped: outside [0, 1] where the colour is out of gamut."""
  return jnp.stack(_linear_rgb_planes(lab[..., 0], lab[..., 1], lab[..., 2]), axis=-1)


def lab_to_rgb(lab):
  """Lab -> sRGB, clipped to [0, 1] exactly as scikit-image clips out-of-gamut colours."""
  linear = _lab_to_linear_rgb(_float(lab))
  # Clamp before the power so that negative values never reach it (the where masks them).
  safe = jnp.maximum(linear, 0.0031308)
  rgb = jnp.where(linear > 0.0031308, 1.055 * safe ** (1 / 2.4) - 0.055, 12.92 * linear)
  return jnp.clip(rgb, 0.0, 1.0)


def fit_chroma_to_gamut(lab, iterations: int = 20, slack: float = 1e-5):
  """Scale each colour's ab toward gray, by the least factor (found by bisection) that brings
  it inside the sRGB gamut; L and hue are kept. lab_to_rgb clips out-of-gamut colours channel
  by channel, which changes their lightness; after this it clips nothing (beyond `slack`), so
  a colorized photo keeps exactly the L it was given. L must lie in [0, 100]. The bisection
  is unrolled on planes: one fused loop over the pixels (9 ms for 0.4 megapixels on 2 cores,
  where a loop of (..., 3) conversions took 92)."""
  lab = _float(lab)
  lightness, a, b = lab[..., 0], lab[..., 1], lab[..., 2]

  def inside(scale):
    planes = _linear_rgb_planes(lightness, scale * a, scale * b)
    return functools.reduce(jnp.logical_and, [(p >= -slack) & (p <= 1 + slack) for p in planes])

  low, high = jnp.zeros_like(lightness), jnp.ones_like(lightness)
  for _ in range(iterations):
    middle = (low + high) / 2
    ok = inside(middle)
    low, high = jnp.where(ok, middle, low), jnp.where(ok, high, middle)
  scale = jnp.where(inside(jnp.ones_like(lightness)), 1.0, low)
  return jnp.stack([lightness, scale * a, scale * b], axis=-1)


def lab_from_uint8(rgb_uint8):
  """uint8 RGB as the pipeline ships it -> Lab, float32, within 7e-5 of scikit-image's float64
  on every 8-bit colour. Each table entry is read by one add, so XLA fuses the lookups into
  the conversion's single loop; one (256,) table of linear values read three times would be
  materialized as a (..., 3) float array first."""
  red, green, blue = _channels(jnp.asarray(rgb_uint8))
  terms = jnp.asarray(_LAB_XYZ_TERMS_8BIT)
  return _lab_from_xyz(*(row[0][red] + row[1][green] + row[2][blue] for row in terms))


def colorized_uint8(lightness, ab):
  """What a colorization shows: ab (..., h, w, 2) at the network's resolution, resized to the
  lightness (..., H, W, 1), joined with it, pulled into the sRGB gamut along its hue, and
  rounded to 8-bit sRGB (..., H, W, 3). Evaluation and inference both call this, so a report
  scores exactly the pixels `run.py colorize` writes."""
  ab = jax.image.resize(ab, (*lightness.shape[:-1], 2), 'linear')
  lab = fit_chroma_to_gamut(jnp.concatenate([lightness, ab], axis=-1))
  return jnp.round(lab_to_rgb(lab) * 255).astype(jnp.uint8)


def rgb_to_yuv(rgb):
  """RGB in [0, 1] -> YUV (BT.601): Y in [0, 1], U in [-0.436, 0.436], V in [-0.615, 0.615]."""
  return _matmul3(_float(rgb), _YUV_FROM_RGB)


def yuv_to_rgb(yuv):
  """YUV (BT.601) -> RGB, the exact inverse of rgb_to_yuv (no clipping)."""
  return _matmul3(_float(yuv), _RGB_FROM_YUV)


# Cao et al.'s release (utils_new.cvtRGB2YUV): full-range YCbCr with JPEG's coefficients
# rounded to 3 decimals, U = -0.169 R - 0.331 G + 0.5 B, then every channel x / 127.5 - 1 of
# its 0..255 value: Y in [-1, 1], U and V in [-1, 1] (twice the colour difference).
_YCBCR_FROM_RGB = np.array([[0.299, 0.587, 0.114],
                            [-0.169, -0.331, 0.5],
                            [0.5, -0.419, -0.081]])
_RGB_FROM_YCBCR = np.linalg.inv(_YCBCR_FROM_RGB)


def rgb_to_scaled_ycbcr(rgb):
  """RGB in [0, 1] -> the release's YCbCr, each channel in [-1, 1]."""
  return 2.0 * _matmul3(_float(rgb), _YCBCR_FROM_RGB) - jnp.asarray([1.0, 0.0, 0.0])


def scaled_ycbcr_to_rgb(yuv):
  """The exact inverse of rgb_to_scaled_ycbcr (no clipping)."""
  yuv = _float(yuv)
  return _matmul3((yuv + jnp.asarray([1.0, 0.0, 0.0], yuv.dtype)) / 2.0, _RGB_FROM_YCBCR)


class YuvSpace(NamedTuple):
  """A luma-chroma encoding a GAN works in: RGB in [0, 1] <-> (Y, U, V), and the largest
  |U|, |V| of any RGB colour (the generator's tanh is scaled to it)."""
  encode: Callable
  decode: Callable
  uv_max: tuple[float, float]


YUV_SPACES = {
    'bt601': YuvSpace(rgb_to_yuv, yuv_to_rgb, (U_MAX, V_MAX)),
    'scaled_ycbcr': YuvSpace(rgb_to_scaled_ycbcr, scaled_ycbcr_to_rgb, (1.0, 1.0)),
}


@flax.struct.dataclass
class LabNorm:
  """An affine Lab normalization, (lab - offset) / scale per channel.

  A pytree of two arrays, so a stack of schemes can be vmapped like any other input:
  the normalization ablation trains every scheme in one compiled function.
  """
  offset: np.ndarray
  scale: np.ndarray

  def normalize(self, lab):
    return (lab - self.offset) / self.scale

  def normalize_l(self, lightness):
    """L (..., 1) in Lab units -> the normalized network input."""
    return (lightness - self.offset[:1]) / self.scale[:1]

  def denormalize(self, lab_normalized):
    return lab_normalized * self.scale + self.offset

  def denormalize_ab(self, ab_normalized):
    """A model's normalized ab output -> ab in Lab units."""
    return ab_normalized * self.scale[1:] + self.offset[1:]


def _norm(offset, scale):
  return LabNorm(np.asarray(offset, np.float32), np.asarray(scale, np.float32))


NORMALIZATIONS = {
    'none': _norm((0, 0, 0), (1, 1, 1)),
    'unit': _norm((0, 0, 0), (100, 128, 128)),         # L/100, ab/128: the ablation write-up
    'centered': _norm((50, 0, 0), (100, 110, 110)),    # (L-50)/100, ab/110: Zhang et al.'s code
    'pix2pix': _norm((50, 0, 0), (50, 110, 110)),      # L/50-1, ab/110
    'shifted': _norm((0, -128, -128), (100, 255, 255)),  # L/100, (ab+128)/255: the U-Net write-up
}
