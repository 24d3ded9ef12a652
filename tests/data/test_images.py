"""Loading one image from the bundled samples or from files the test writes."""

import io
import struct
import warnings
import zlib

import numpy as np
import PIL.Image
import PIL.ImageFile
import PIL.ImageOps
import pytest
import skimage.data
import skimage.io

from colorjax.data import images
from colorjax.errors import UsageError


def test_bundled_photo_and_scaling():
  full = images.load_image('coffee')
  assert full.shape == (400, 600, 3) and full.dtype == np.uint8
  assert np.array_equal(full, skimage.data.coffee())
  small = images.load_image('coffee', 0.25)
  assert small.shape == (100, 150, 3) and small.dtype == np.uint8
  # an anti-aliased 4x shrink keeps the mean colour
  np.testing.assert_allclose(small.mean((0, 1)), full.mean((0, 1)), atol=1.0)


def test_rgba_and_16_bit_files_become_uint8_rgb(tmp_path):
  rgb = skimage.data.chelsea()[:40, :50]
  rgba = np.concatenate([rgb, np.full((40, 50, 1), 200, np.uint8)], -1)
  skimage.io.imsave(tmp_path / 'rgba.png', rgba, check_contrast=False)
  skimage.io.imsave(tmp_path / 'deep.tif', rgb.astype(np.uint16) * 257, check_contrast=False)
  assert np.array_equal(images.load_image(str(tmp_path / 'rgba.png')), rgb)
  assert np.array_equal(images.load_image(str(tmp_path / 'deep.tif')), rgb)


def test_unusable_images_are_usage_errors(tmp_path):
  skimage.io.imsave(tmp_path / 'gray.png', np.zeros((8, 8), np.uint8), check_contrast=False)
  (tmp_path / 'broken.png').write_bytes(b'not a png')
  with pytest.raises(UsageError, match='grayscale'):
    images.load_image(str(tmp_path / 'gray.png'))
  with pytest.raises(UsageError, match='cannot read'):
    images.load_image(str(tmp_path / 'broken.png'))
  with pytest.raises(UsageError, match='not found'):
    images.load_image(str(tmp_path / 'missing.png'))
  with pytest.raises(UsageError, match='must be positive'):
    images.load_image('coffee', 0.0)


def _jpeg(image: PIL.Image.Image, **options) -> bytes:
  buffer = io.BytesIO()
  image.save(buffer, 'JPEG', **options)
  return buffer.getvalue()


def _pillow_reference(encoded: bytes, short_side: int) -> np.ndarray:
  """Pillow alone: draft-scaled decode, turned upright, as RGB."""
  with PIL.Image.open(io.BytesIO(encoded)) as stored:
    if short_side:
      stored.draft('RGB', (short_side, short_side))
    return np.asarray(PIL.ImageOps.exif_transpose(stored).convert('RGB'))


def test_jpegs_decode_to_pillows_pixels_at_every_draft_scale(monkeypatch):
  photo = PIL.Image.fromarray(skimage.data.astronaut())  # 512x512
  exif = PIL.Image.Exif()
  exif[0x0112] = 6  # stored sideways
  jpegs = {'4:2:0': _jpeg(photo), '4:4:4': _jpeg(photo, subsampling=0, quality=95),
           'gray': _jpeg(photo.convert('L')), 'cmyk': _jpeg(photo.convert('CMYK')),
           'sideways': _jpeg(photo.crop((0, 0, 512, 320)), exif=exif)}
  simplejpeg = pytest.importorskip('simplejpeg')
  fast = []
  decode = simplejpeg.decode_jpeg
  monkeypatch.setattr(simplejpeg, 'decode_jpeg', lambda *a, **k: fast.append(1) or
                      decode(*a, **k))
  for name, encoded in jpegs.items():
    for short_side in (0, 60, 100, 130, 300):  # scales 1, 1/8, 1/4, 1/2, 1
      fast.clear()
      decoded = images.read_rgb(encoded, short_side)
      np.testing.assert_array_equal(decoded, _pillow_reference(encoded, short_side),
                                    err_msg=f'{name} at short side {short_side}')
      assert bool(fast) == (name in ('4:2:0', '4:4:4', 'gray')), name  # the rest: Pillow
  assert images.read_rgb(jpegs['sideways']).shape == (512, 320, 3)  # turned upright
  with pytest.raises(OSError, match='truncated'):
    images.read_rgb(jpegs['4:2:0'][:len(jpegs['4:2:0']) // 2])


def test_16_bit_files_round_to_the_nearest_8_bit_level(tmp_path):
  levels = np.arange(0, 65536, 7, dtype=np.uint16)[None, :]
  expected = np.round(levels / 65535 * 255)
  np.testing.assert_array_equal(images.to_rgb_uint8(levels)[..., 0], expected)


def test_exif_orientation_turns_a_phone_photo_upright(tmp_path):
  stored = images.resize_rgb(skimage.data.astronaut(), (40, 60))  # as the sensor wrote it
  exif = PIL.Image.Exif()
  exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
  PIL.Image.fromarray(stored).save(tmp_path / 'phone.jpg', exif=exif, quality=95)
  upright = images.read_rgb(tmp_path / 'phone.jpg')
  assert upright.shape == (60, 40, 3)
  error = lambda turned: np.abs(upright.astype(float) - turned).mean()
  assert error(np.rot90(stored, -1)) < 5 < error(np.rot90(stored, 1))  # JPEG: not exact


def _png_header(height: int, width: int) -> bytes:
  """A PNG that declares height x width RGB pixels and holds none: a decompression bomb's
  header, a few dozen bytes."""
  chunk = lambda kind, data: (struct.pack('>I', len(data)) + kind + data
                              + struct.pack('>I', zlib.crc32(kind + data)))
  header = struct.pack('>IIBBBBB', width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
  return (b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', header) + chunk(b'IDAT', zlib.compress(b''))
          + chunk(b'IEND', b''))


def _count_decodes(monkeypatch) -> list:
  """A list that grows by one at each decode by Pillow or simplejpeg."""
  decoded = []
  spy = lambda decode: lambda *args, **kwargs: decoded.append(1) or decode(*args, **kwargs)
  monkeypatch.setattr(PIL.ImageFile.ImageFile, 'load', spy(PIL.ImageFile.ImageFile.load))
  if images._simplejpeg():
    simplejpeg = images._simplejpeg()
    monkeypatch.setattr(simplejpeg, 'decode_jpeg', spy(simplejpeg.decode_jpeg))
  return decoded


def test_photos_over_the_pixel_budget_are_refused_before_decoding(tmp_path, monkeypatch):
  photo = PIL.Image.fromarray(skimage.data.chelsea()[:60, :80])
  photo.save(tmp_path / 'photo.png')
  jpeg = _jpeg(photo)
  decoded = _count_decodes(monkeypatch)
  with warnings.catch_warnings():
    warnings.simplefilter('error')  # Pillow's own decompression-bomb warning is not shown
    for height, width in ((8000, 8000), (10000, 10000), (30000, 30000)):  # the last: Pillow's
      with pytest.raises(images.TooLarge, match='megapixel budget'):
        images.read_rgb(_png_header(height, width))
  monkeypatch.setattr(images, 'MAX_PIXELS', 60 * 80 - 1)
  for data in ((tmp_path / 'photo.png').read_bytes(), jpeg):
    with pytest.raises(images.TooLarge, match='60x80 pixels'):
      images.read_rgb(data)
  assert not decoded
  assert images.read_rgb(jpeg, short_side=30).shape == (30, 40, 3)  # decoded at 1/2: within


def test_arrays_in_the_documented_conventions_become_uint8_rgb():
  rgb = skimage.data.chelsea()[:20, :30]
  same = {'uint16': rgb.astype(np.uint16) * 257, 'float': rgb / 255.0,
          'float32': (rgb / 255.0).astype(np.float32),
          'rgba': np.concatenate([rgb, np.zeros((20, 30, 1), np.uint8)], -1)}
  for name, image in same.items():
    np.testing.assert_array_equal(images.to_rgb_uint8(image), rgb, err_msg=name)
  gray = rgb[..., 0]
  for image in (gray, gray[..., None], np.stack([gray, gray], -1)):  # gray, gray + alpha
    np.testing.assert_array_equal(images.to_rgb_uint8(image), np.stack([gray] * 3, -1))


def test_a_pil_image_of_any_mode_becomes_the_rgb_it_shows(monkeypatch):
  colours = np.array([[200, 30, 40], [20, 180, 60], [30, 60, 220]], np.uint8)
  indices = np.arange(12 * 10).reshape(12, 10) % 3
  palette = PIL.Image.fromarray(indices.astype(np.uint8), 'P')
  palette.putpalette(colours.ravel())
  np.testing.assert_array_equal(images.pil_rgb(palette), colours[indices])
  np.testing.assert_array_equal(images.pil_rgb(palette.convert('PA')), colours[indices])
  gray = skimage.data.camera()[:12, :10]
  for image in (PIL.Image.fromarray(gray), PIL.Image.fromarray(gray.astype(np.uint16) * 257)):
    np.testing.assert_array_equal(images.pil_rgb(image), np.stack([gray] * 3, -1),
                                  err_msg=image.mode)
  monkeypatch.setattr(images, 'MAX_PIXELS', 12 * 10 - 1)
  with pytest.raises(images.TooLarge, match='12x10 pixels'):
    images.pil_rgb(palette)


@pytest.mark.parametrize('image, error, message', [
    (np.full((4, 4, 3), 200.0), ValueError, 'divide a 0-255 image by 255'),
    (np.linspace(-1, 1, 48).reshape(4, 4, 3), ValueError, r'\(image \+ 1\) / 2'),
    (np.full((4, 4), np.nan), ValueError, 'finite'),
    (np.full((4, 4, 3), 4000, np.int16), TypeError, 'dtype int16.*uint16'),
    (np.zeros((4, 4, 3), bool), TypeError, 'dtype bool'),
    ('photo.png', TypeError, 'dtype <U9'),
    (np.zeros((0, 0, 3), np.uint8), ValueError, 'has no pixels'),
    (np.zeros((4, 4, 5), np.uint8), ValueError, r'\(H, W, C\) with C = 1'),
    (np.zeros(5, np.uint8), ValueError, r'shape \(5,\) is not an image'),
])
def test_arrays_outside_the_conventions_are_refused_with_the_fix(image, error, message):
  with pytest.raises(error, match=message):
    images.to_rgb_uint8(image)


def test_an_array_over_the_budget_is_refused(monkeypatch):
  monkeypatch.setattr(images, 'MAX_PIXELS', 99)
  images.to_rgb_uint8(np.zeros((9, 11), np.uint8))
  with pytest.raises(images.TooLarge, match='10x10 pixels'):
    images.to_rgb_uint8(np.zeros((10, 10), np.uint8))


def test_working_sizes_are_checked():
  for size in (None, 1, 256, np.int64(64), (256, 384), [32, 48]):
    images.check_working_size(size)
  assert images.check_working_size([32, 48]) == (32, 48)
  for size in ('abc', 2.5, True, (256,), (1, 2, 3), ('a', 'b')):
    with pytest.raises(TypeError, match='a short side N or'):
      images.check_working_size(size)
  for size in (-5, 0, (0, 0), (64, -1), images.MAX_WORKING_SIDE + 1):
    with pytest.raises(ValueError, match=f'1 to {images.MAX_WORKING_SIDE} pixels'):
      images.check_working_size(size)
  images.check_working_side((256, images.MAX_WORKING_SIDE), (3, 8))
  with pytest.raises(images.TooLarge, match='3x100000 pixels would be seen at 256x8533336'):
    images.check_working_side((256, 8533336), (3, 100000))
