"""Loading one image from the bundled samples or from files the test writes."""

import io

import numpy as np
import PIL.Image
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
