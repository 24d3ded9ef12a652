"""Image input. For now: one photo as uint8 RGB, from scikit-image's bundled samples or a file.

The bundled colour photos are the offline default: they ship inside the scikit-image
package, so smoke runs and tests never touch the network.
"""

import pathlib

import numpy as np
import skimage.data
import skimage.io
import skimage.transform
import skimage.util

from colorjax.errors import UsageError

# Colour photos that ship inside the scikit-image package (no download).
SAMPLE_PHOTOS = ('astronaut', 'chelsea', 'coffee', 'rocket', 'immunohistochemistry',
                 'hubble_deep_field', 'retina')


def to_rgb_uint8(image: np.ndarray, source: str) -> np.ndarray:
  """Any decoded image (gray, RGB, RGBA; 8 or 16 bit; float) -> HxWx3 uint8 RGB."""
  if image.ndim == 3 and image.shape[-1] == 4:
    image = image[..., :3]
  if image.ndim == 2 or (image.ndim == 3 and image.shape[-1] == 1):
    raise UsageError(f'{source} is a grayscale image: a colorization target needs colour; '
                     'pass a colour photo')
  if image.ndim != 3 or image.shape[-1] != 3:
    raise UsageError(f'{source} has shape {image.shape}, not an RGB image; pass a colour photo')
  return skimage.util.img_as_ubyte(image)


def load_image(spec: str, scale: float = 1.0) -> np.ndarray:
  """`spec` is a scikit-image sample name ('coffee') or an image path; returns uint8 HxWx3,
  resized by `scale` (anti-aliased) when scale != 1."""
  if spec in SAMPLE_PHOTOS:
    image = getattr(skimage.data, spec)()
  else:
    path = pathlib.Path(spec).expanduser()
    if not path.is_file():
      raise UsageError(f"image '{spec}' not found: pass --config.image=PATH to an image file, "
                       f"or a bundled photo ({', '.join(SAMPLE_PHOTOS)})")
    try:
      image = skimage.io.imread(path)
    except Exception as e:  # decoders raise many types; all mean "not an image we can read"
      raise UsageError(f'cannot read {path} as an image ({type(e).__name__}); '
                       'pass a PNG, JPEG, BMP, TIFF or WebP file') from None
  image = to_rgb_uint8(np.asarray(image), spec)
  if scale <= 0:
    raise UsageError(f'--config.image_scale={scale} must be positive (1.0 = full size)')
  if scale != 1.0:
    h, w = image.shape[:2]
    image = resize_rgb(image, (max(1, round(h * scale)), max(1, round(w * scale))))
  return image


def resize_rgb(image: np.ndarray, size) -> np.ndarray:
  """uint8 HxWx3 -> uint8 at size (h, w), anti-aliased when shrinking."""
  shrink = size[0] < image.shape[0] or size[1] < image.shape[1]
  return skimage.util.img_as_ubyte(skimage.transform.resize(image, size, anti_aliasing=shrink))
