"""`--pipeline=published`: the authors' demo, written here in PyTorch and scikit-image after
richzhang/colorization's colorizers/util.py (preprocess_img, postprocess_tens), eccv16.py
(upsample4) and demo_release.py (plt.imsave), on a random eccv16 imported as the release is,
must give colorjax's output within 60 dB PSNR on real photos of several sizes."""

import io

import matplotlib.image
import numpy as np
import PIL.Image
import pytest
import skimage.color
import skimage.data

from colorjax import inference, published
from colorjax.data import images
from tests import commands, test_released

torch = pytest.importorskip('torch')
F = torch.nn.functional

released = test_released.released  # the random eccv16 with photo statistics, imported
SIZES = [(203, 331), (97, 150)]  # each axis resized down and up; all up (slow tier time)


def authors_demo(net, rgb, upsample4=True):
  """demo_release.py: preprocess_img, the forward (eccv16's with its upsample4; siggraph17's
  at full resolution), postprocess_tens, and the PNG plt.imsave writes (read back, alpha
  dropped)."""
  resized = np.asarray(PIL.Image.fromarray(rgb).resize((256, 256), resample=3))
  tens_orig_l = torch.Tensor(skimage.color.rgb2lab(rgb)[:, :, 0])[None, None]
  tens_rs_l = torch.Tensor(skimage.color.rgb2lab(resized)[:, :, 0])[None, None]
  with torch.no_grad():
    out_ab = net(tens_rs_l)
    if upsample4:
      out_ab = torch.nn.Upsample(scale_factor=4, mode='bilinear')(out_ab)
  out_ab = F.interpolate(out_ab, size=tens_orig_l.shape[2:], mode='bilinear')
  out_lab = torch.cat((tens_orig_l, out_ab), dim=1)
  out_img = skimage.color.lab2rgb(out_lab.numpy()[0].transpose((1, 2, 0)))
  buffer = io.BytesIO()
  matplotlib.image.imsave(buffer, out_img, format='png')
  return np.asarray(PIL.Image.open(buffer))[..., :3]


def psnr(x, y):
  mse = np.mean((x.astype(np.float64) - y.astype(np.float64)) ** 2)
  return 10 * np.log10(255 ** 2 / mse) if mse else float('inf')


def _photo(name, size):
  return images.resize_rgb(getattr(skimage.data, name)(), size)


@pytest.mark.slow
@pytest.mark.parametrize('size', SIZES)
def test_published_pipeline_gives_the_authors_demo(released, size):
  net, _, workdir = released
  colorizer = inference.load(workdir, pipeline='published')
  default = inference.load(workdir)
  for name in ('astronaut', 'coffee'):
    photo = _photo(name, size)
    expected, ours = authors_demo(net, photo), colorizer(photo)
    assert ours.shape == expected.shape == photo.shape
    assert psnr(ours, expected) >= 60
    assert psnr(default(photo), expected) < 50  # the default pipeline is another one


def test_resizes_are_torchs_bilinear_without_antialiasing():
  ab = np.random.default_rng(0).normal(0, 30, (1, 16, 24, 2)).astype(np.float32)
  for size in [(64, 96), (7, 11), (16, 24)]:
    expected = F.interpolate(torch.from_numpy(ab.transpose(0, 3, 1, 2)), size=size,
                             mode='bilinear').numpy().transpose(0, 2, 3, 1)
    np.testing.assert_allclose(published._bilinear(ab, size), expected, atol=1e-4)


def test_the_saved_bytes_truncate_as_matplotlib():
  for gray, ab in ((100, [20.3, -30.1]), (200, [-40.7, 60.2]), (30, [5.5, 4.9])):
    rgb = np.full((3, 5, 3), gray, np.uint8)  # one colour: the resizes keep it exactly
    lab = skimage.color.rgb2lab(rgb).astype(np.float32)
    lab[..., 1:] = ab
    ours = np.asarray(published.colorized(rgb, lab[None, :1, :1, 1:]))[0]
    buffer = io.BytesIO()
    matplotlib.image.imsave(buffer, skimage.color.lab2rgb(lab), format='png')
    assert np.array_equal(ours, np.asarray(PIL.Image.open(buffer))[..., :3])
    assert not np.array_equal(ours, np.round(skimage.color.lab2rgb(lab) * 255))  # not rounded


@pytest.mark.slow
def test_colorize_and_evaluate_take_the_pipeline(released, tmp_path, capsys):
  _, _, workdir = released
  photo = _photo('coffee', (120, 180))
  PIL.Image.fromarray(photo).save(tmp_path / 'coffee.png')
  commands.run_in_process(capsys, 'colorize', f'--workdir={workdir}', tmp_path / 'coffee.png',
                          f'--out={tmp_path / "out"}', '--pipeline=published')
  written = np.asarray(PIL.Image.open(tmp_path / 'out' / 'coffee.png'))
  assert np.array_equal(written, inference.load(workdir, pipeline='published')(photo))
  commands.run_in_process(capsys, 'evaluate', f'--workdir={workdir}', tmp_path / 'coffee.png',
                          f'--out={tmp_path / "eval"}', '--pipeline=published',
                          '--bootstrap=100')
  assert 'pipeline: published' in (tmp_path / 'eval' / 'evaluation.md').read_text()


def test_the_pipeline_is_refused_where_it_means_nothing(zhang_run, tmp_path, capsys):
  workdir, _, _ = zhang_run
  with pytest.raises(ValueError, match="size=128 does not apply to pipeline='published'"):
    inference.load(workdir, pipeline='published', size=128)
  photo = tmp_path / 'a.png'
  PIL.Image.fromarray(skimage.data.chelsea()[:32, :32]).save(photo)
  commands.assert_one_line(*commands.run_in_process(
      capsys, 'colorize', f'--workdir={workdir}', photo, '--pipeline=published',
      '--size=128'), '--size does not apply to --pipeline=published')
  with pytest.raises(ValueError, match="pipeline='demo': pass one of default, published"):
    inference.load(workdir, pipeline='demo')
  commands.assert_one_line(*commands.run_in_process(
      capsys, 'colorize', f'--workdir={workdir}', tmp_path, '--pipeline=demo'),
      "invalid choice: 'demo'")
