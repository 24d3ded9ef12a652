"""Loading one image from the bundled samples or from files the test writes."""

import numpy as np
import pytest
import skimage.data
import skimage.io

from colorjax import images
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
