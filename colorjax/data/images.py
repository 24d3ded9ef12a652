"""One image on the host: decode any file, convert to uint8 RGB, resize, check for colour.

The bundled colour photos of scikit-image are the offline default: they ship inside the
package, so smoke runs and tests never touch the network.
"""

import io
import os
import pathlib
import warnings

import numpy as np
import PIL.Image
import PIL.ImageOps
import skimage.color
import skimage.data
import skimage.util

from colorjax import optional
from colorjax.errors import UsageError

# The files colorjax reads as images, by suffix (lower case): folder sources, colorize and
# evaluate find them by it.
IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')

# Colour photos that ship inside the scikit-image package (no download).
SAMPLE_PHOTOS = ('astronaut', 'chelsea', 'coffee', 'rocket', 'immunohistochemistry',
                 'hubble_deep_field', 'retina')


MAX_SIDE = 8192  # pixels; a larger scaled photo is a typo in image_scale, not a wish

# The memory budget of colorize, evaluate and colorjax.load (docs/colorize.md): a photo is
# refused above MAX_PIXELS, checked from the file's header before it is decoded (its
# full-resolution output costs about 200 bytes a pixel, 10 GB at the cap; evaluate's metrics
# about 430, 22 GB), and so is a working size (what the network sees) above MAX_WORKING_SIDE
# a side.
MAX_PIXELS = 50_000_000
MAX_WORKING_SIDE = 2048


class TooLarge(ValueError):
  """An image or working size over the memory budget: the message says which and the fix."""


def check_pixels(height: int, width: int):
  """Refuse a photo over MAX_PIXELS before anything the size of its pixels is allocated."""
  if height * width > MAX_PIXELS:
    raise _over_budget(f'{height}x{width} pixels')


def pixel_budget() -> str:
  """The budget as messages name it (read when called: MAX_PIXELS may be lowered)."""
  return f'{MAX_PIXELS / 1e6:g}-megapixel budget (colorjax.data.images.MAX_PIXELS)'


def _over_budget(what: str) -> TooLarge:
  return TooLarge(f'{what} is over the {pixel_budget()}: shrink the photo first')


def check_working_size(size):
  """A working size as --size and load(size=) take it, checked: None (the family's
  default), a short side N or (h, w), each 1 to MAX_WORKING_SIDE pixels."""
  if size is None:
    return size
  pair = isinstance(size, (tuple, list))
  sides = tuple(size) if pair else (size,)
  if len(sides) != (2 if pair else 1) or not all(
      isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in sides):
    raise TypeError(f'size={size!r}: pass a short side N or (h, w), as ints')
  if not all(1 <= s <= MAX_WORKING_SIDE for s in sides):
    raise ValueError(f'size={size!r}: each side must be 1 to {MAX_WORKING_SIDE} pixels '
                     '(colorjax.data.images.MAX_WORKING_SIDE)')
  return tuple(map(int, sides)) if pair else int(size)


def check_working_side(working_size, image_size):
  """Refuse a working size over MAX_WORKING_SIDE (a short side of 256 on a 3x100000 strip
  would ask the network for 256x8533333 pixels)."""
  if max(working_size) > MAX_WORKING_SIDE:
    h, w = image_size
    raise TooLarge(f'its {h}x{w} pixels would be seen at {working_size[0]}x{working_size[1]}, '
                   f'over {MAX_WORKING_SIDE} pixels a side (colorjax.data.images.'
                   'MAX_WORKING_SIDE): crop it, or pass a smaller size')


def sample_photo(name: str) -> np.ndarray:
  return getattr(skimage.data, name)()


def find_images(paths) -> tuple[list[pathlib.Path], list[str]]:
  """Files named and image files in folders named (recursively, sorted); and the paths that
  do not exist."""
  files, missing = [], []
  for path in map(pathlib.Path, paths):
    if path.is_dir():
      files += sorted(p for p in path.rglob('*')
                      if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    elif path.is_file():
      files.append(path)
    else:
      missing.append(str(path))
  return files, missing


CONVENTIONS = 'uint8 (0-255), uint16 (0-65535) or float in [0, 1]'


def to_rgb_uint8(image) -> np.ndarray:
  """An image in a convention colorjax reads -> HxWx3 uint8: gray (H, W) or (H, W, 1),
  gray+alpha, RGB or RGBA (alpha dropped), as CONVENTIONS. Any other is refused, not guessed:
  a float image in [0, 255] or [-1, 1], or 12-bit data in int16, would come out washed out
  or nearly black."""
  image = np.asarray(image)
  _check_image(image)
  if image.ndim == 3 and image.shape[-1] in (2, 4):
    image = image[..., :-1]  # drop alpha
  if image.ndim == 3 and image.shape[-1] == 1:
    image = image[..., 0]
  if image.ndim == 2:
    image = np.stack([image] * 3, axis=-1)
  if image.dtype == np.uint16:  # rounded: img_as_ubyte truncates (v >> 8), up to 1 level off
    return np.round(image / 257.0).astype(np.uint8)
  return skimage.util.img_as_ubyte(image)


def _check_image(image: np.ndarray):
  """A TypeError or ValueError naming what to pass, for an array that is not an image in
  one of the CONVENTIONS, or one over the budget."""
  floating = np.issubdtype(image.dtype, np.floating)
  if image.dtype not in (np.uint8, np.uint16) and not floating:
    raise TypeError(f'an image of dtype {image.dtype}: pass {CONVENTIONS} (0-255 values in '
                    'another dtype: image.astype(np.uint8); 12-bit data: (image * 16) as uint16)')
  if image.ndim not in (2, 3) or image.ndim == 3 and image.shape[-1] not in (1, 2, 3, 4):
    raise ValueError(f'shape {image.shape} is not an image: pass (H, W) or (H, W, C) with C = '
                     '1 (gray), 2 (gray + alpha), 3 (RGB) or 4 (RGBA)')
  if not image.size:
    raise ValueError(f'an image of shape {image.shape} has no pixels')
  check_pixels(*image.shape[:2])
  if floating and not (np.isfinite(image).all() and 0 <= image.min() and image.max() <= 1):
    raise ValueError(f'a float image must be finite and lie in [0, 1] (found {image.min():.3g}'
                     f'..{image.max():.3g}): divide a 0-255 image by 255, map [-1, 1] by '
                     '(image + 1) / 2, or pass uint8')


def read_rgb(file, short_side: int = 0) -> np.ndarray:
  """Decode a path, encoded bytes or a binary file object (JPEG, PNG incl. 16 bit, BMP, TIFF,
  WebP) -> HxWx3 uint8, turned upright as its EXIF orientation says (a phone photo is stored
  sideways). short_side > 0: the caller resizes to that short side next, so a JPEG is decoded
  at the smallest of 1/1, 1/2, 1/4, 1/8 scale that keeps both sides >= short_side (libjpeg's
  scaled decode: a large photo decodes several times faster)."""
  encoded = _encoded(file)
  if _plain_jpeg(encoded) and _simplejpeg():
    try:
      return _decode_jpeg(encoded, short_side)
    except TooLarge:
      raise
    except ValueError:  # not one simplejpeg decodes cleanly: Pillow decides, and says why
      pass
  with _opened(encoded) as stored:
    if short_side:
      stored.draft('RGB', (short_side, short_side))
    check_pixels(stored.height, stored.width)  # from the header: nothing is decoded yet
    _turn_upright(stored)
    if stored.mode == 'I':  # 16-bit data a decoder gave as 32-bit
      return to_rgb_uint8((np.asarray(stored, np.int64) >> 8).clip(0, 255).astype(np.uint8))
    return pil_rgb(stored)


def pil_rgb(image: PIL.Image.Image) -> np.ndarray:
  """A PIL image -> HxWx3 uint8: RGB, RGBA and gray ('L', 'LA', 16-bit 'I;16') as their arrays
  are read (to_rgb_uint8); any other mode by PIL's own convert('RGB'), since its array is not
  RGB (a palette image's array holds indices into the palette, a CMYK one 4 inks)."""
  check_pixels(image.height, image.width)  # before a lazily opened image is decoded
  if image.mode == 'RGB':  # most photos
    return np.asarray(image)
  if image.mode.startswith('I;16'):
    return to_rgb_uint8(np.asarray(image, np.uint16))
  return to_rgb_uint8(np.asarray(image if image.mode in ('RGBA', 'L', 'LA')
                                 else image.convert('RGB')))


def _opened(encoded: bytes) -> PIL.Image.Image:
  """Pillow's lazy open (the header only). Its decompression-bomb guard, at twice
  PIL.Image.MAX_IMAGE_PIXELS, is above the budget: its warning is not shown, since
  check_pixels refuses such an image, and its error becomes TooLarge."""
  with warnings.catch_warnings():
    warnings.simplefilter('ignore', PIL.Image.DecompressionBombWarning)
    try:
      return PIL.Image.open(io.BytesIO(encoded))
    except PIL.Image.DecompressionBombError:
      raise _over_budget(f'more than {2 * PIL.Image.MAX_IMAGE_PIXELS / 1e6:.0f} megapixels '
                         "(Pillow's decompression-bomb guard)") from None


def _encoded(file) -> bytes:
  if isinstance(file, (bytes, bytearray)):
    return bytes(file)
  if isinstance(file, (str, os.PathLike)):
    return pathlib.Path(file).read_bytes()
  return file.read()


_ORIENTATION_MARKERS = (b'Exif\x00\x00', b'http://ns.adobe.com/xap/1.0/')


def _plain_jpeg(encoded: bytes) -> bool:
  """A JPEG whose header segments (all before the first start-of-scan) hold neither EXIF nor
  XMP, so it has no orientation to apply: simplejpeg decodes it (libjpeg-turbo, like Pillow,
  to the same pixels) in half of Pillow's CPU time, straight into an array."""
  if not encoded.startswith(b'\xff\xd8'):
    return False
  header = encoded[:encoded.find(b'\xff\xda')]
  return not any(marker in header for marker in _ORIENTATION_MARKERS)


def _simplejpeg():
  return optional.load('simplejpeg', 'JPEGs decode with Pillow, in about twice the CPU time',
                       'simplejpeg')


def _decode_jpeg(encoded: bytes, short_side: int) -> np.ndarray:
  simplejpeg = _simplejpeg()
  height, width, colorspace, _ = simplejpeg.decode_jpeg_header(encoded)
  if colorspace not in ('YCbCr', 'Gray'):  # CMYK, YCCK: Pillow's conversions
    raise ValueError(colorspace)
  scale = next((s for s in (8, 4, 2) if short_side and min(height, width) // s >= short_side), 1)
  check_pixels(-(-height // scale), -(-width // scale))
  return simplejpeg.decode_jpeg(encoded, 'RGB', min_height=-(-height // scale),
                                min_width=-(-width // scale))


def _turn_upright(stored: PIL.Image.Image):
  """Load the image and turn it as its EXIF orientation says, in place (no copy of an upright
  one); a JPEG with neither EXIF nor XMP has no orientation to parse (a tenth of a decode)."""
  if stored.format == 'JPEG' and not stored.info.keys() & {'exif', 'xmp'}:
    stored.load()
  else:
    PIL.ImageOps.exif_transpose(stored, in_place=True)


def has_color(rgb_uint8: np.ndarray, threshold: float, max_side: int = 64) -> bool:
  """True unless every pixel's |a| and |b| are within `threshold` (judged on a thumbnail)."""
  h, w = rgb_uint8.shape[:2]
  step = max(1, max(h, w) // max_side)
  lab = skimage.color.rgb2lab(rgb_uint8[::step, ::step])
  return bool(np.abs(lab[..., 1:]).max() > threshold)


def resize_rgb(image: np.ndarray, size) -> np.ndarray:
  """uint8 HxWx3 -> uint8 at size (h, w), Lanczos (anti-aliased when shrinking). Pillow works
  on the 8-bit image: a 6000x4000 photo shrinks to 256 in 0.2 s, where scikit-image's float64
  path took 9.5 s."""
  h, w = size
  if (h, w) == image.shape[:2]:
    return image
  return np.asarray(PIL.Image.fromarray(image).resize((w, h), PIL.Image.LANCZOS,
                                                      reducing_gap=3.0))


def load_image(spec: str, scale: float = 1.0) -> np.ndarray:
  """A colour photo to learn from: a bundled sample name ('coffee') or an image path; returns
  uint8 HxWx3, resized by `scale` (anti-aliased) when scale != 1."""
  if spec in SAMPLE_PHOTOS:
    image = sample_photo(spec)
  else:
    path = pathlib.Path(spec).expanduser()
    if not path.is_file():
      raise UsageError(f"image '{spec}' not found: pass --config.image=PATH to an image file, "
                       f"or a bundled photo ({', '.join(SAMPLE_PHOTOS)})")
    try:
      image = read_rgb(path)
    except Exception as e:  # decoders raise many types; all mean "not an image we can read"
      raise UsageError(f'cannot read {path} as an image ({type(e).__name__}); '
                       'pass a PNG, JPEG, BMP, TIFF or WebP file') from None
  if not has_color(image, threshold=1.0):
    raise UsageError(f'{spec} is a grayscale image: a colorization target needs colour; '
                     'pass a colour photo')
  h, w = image.shape[:2]
  if not 0 < scale < float('inf') or max(h, w) * scale > MAX_SIDE:
    raise UsageError(f'--config.image_scale={scale} must be positive and keep the photo '
                     f'({h}x{w}) within {MAX_SIDE} pixels a side (1.0 = full size)')
  if scale != 1.0:
    image = resize_rgb(image, (max(1, round(h * scale)), max(1, round(w * scale))))
  return image
