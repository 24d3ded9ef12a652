"""The authors' demo pipeline (`--pipeline=published`): what richzhang/colorization's
demo_release.py writes for a photo, with the network's ab from colorjax.

Step for step as its colorizers/util.py and eccv16.py: the photo is squashed to 256x256 with
PIL bicubic (`preprocess_img`, resample=3), the network sees that image's L; its ab is
upsampled bilinearly to the network's input size (eccv16's `upsample4`, x4) and then to the
photo's size (`postprocess_tens`, F.interpolate), both with half-pixel centres and no
antialiasing (align_corners=False); it is joined with the photo's own L and converted by
skimage's lab2rgb, which clips each channel to [0, 1]; plt.imsave writes that float image as
`(x * 255).astype(uint8)`, truncating. The default pipeline (color.colorized_uint8) keeps the
aspect, fits chroma to the gamut along its hue and rounds instead.
"""

import jax
import jax.numpy as jnp
import numpy as np
import PIL.Image

from colorjax import color

SIZE = (256, 256)  # preprocess_img's HW: every photo, whatever its aspect
BICUBIC = 3        # preprocess_img's resample (PIL.Image.BICUBIC)


def resize_rgb(rgb_uint8: np.ndarray, size=SIZE) -> np.ndarray:
  """util.resize_img: uint8 HxWx3 -> uint8 at size (h, w), PIL bicubic, aspect not kept."""
  return np.asarray(PIL.Image.fromarray(rgb_uint8).resize(size[::-1], resample=BICUBIC))


def _bilinear(ab, size):
  """ab (..., h, w, 2) -> (..., *size, 2) as torch's bilinear with align_corners=False."""
  return jax.image.resize(ab, (*ab.shape[:-3], *size, 2), 'linear', antialias=False)


@jax.jit
def colorized(rgb_uint8, ab_small):
  """An image's uint8 (H, W, 3) and the network's ab (S, h, w, 2) for its SIZE resize -> S
  uint8 (H, W, 3), as the demo saves them."""
  lightness = color.lab_from_uint8(rgb_uint8)[..., :1]
  ab = _bilinear(_bilinear(ab_small, SIZE), lightness.shape[:2])
  lab = jnp.concatenate([jnp.broadcast_to(lightness, (*ab.shape[:-1], 1)), ab], -1)
  return (color.lab_to_rgb(lab) * 255).astype(jnp.uint8)  # matplotlib truncates
