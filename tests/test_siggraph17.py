"""The released siggraph17 network: the published architecture, written here in PyTorch after
richzhang/colorization's siggraph17.py, with random weights and BatchNorm statistics, is
imported and must give PyTorch's ab with and without hints; hints move the colours near
them; colorize, evaluate and colorjax.load use the run; mistakes are one line."""

import json

import jax.numpy as jnp
import numpy as np
import PIL.Image
import pytest
import skimage.color
import skimage.data

from colorjax import hints, inference
from colorjax.cli import evaluate, main
from colorjax.data import images
from tests import commands

torch = pytest.importorskip('torch')
nn = torch.nn

from colorjax.released import import_weights  # noqa: E402
from tests import test_published  # noqa: E402  (the authors' demo, written in PyTorch)


def _block(cin, cout, convs, dilation=1, relu_first=False):
  """Convs with ReLU, then BatchNorm (after a ReLU for the decoder's blocks 8 and 9)."""
  layers = [nn.ReLU(True)] if relu_first else []
  for i in range(convs):
    layers += [nn.Conv2d(cin if i == 0 else cout, cout, 3, padding=dilation, dilation=dilation),
               nn.ReLU(True)]
  return nn.Sequential(*layers, nn.BatchNorm2d(cout))


def _up(cin, cout):
  return nn.Sequential(nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1))


def _short(cin, cout):
  return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1))


class SIGGRAPH17(nn.Module):
  """The published SIGGRAPHGenerator: stride-1 blocks with [::2, ::2] after 1-3, three
  upsamplings each added to a shortcut conv, tanh x 110 at full resolution; model_class
  (529) is built, as published, and unused."""

  def __init__(self):
    super().__init__()
    self.model1, self.model2 = _block(4, 64, 2), _block(64, 128, 2)
    self.model3, self.model4 = _block(128, 256, 3), _block(256, 512, 3)
    self.model5, self.model6 = _block(512, 512, 3, 2), _block(512, 512, 3, 2)
    self.model7 = _block(512, 512, 3)
    self.model8up, self.model3short8 = _up(512, 256), _short(256, 256)
    self.model8 = _block(256, 256, 2, relu_first=True)
    self.model9up, self.model2short9 = _up(256, 128), _short(128, 128)
    self.model9 = _block(128, 128, 1, relu_first=True)
    self.model10up, self.model1short10 = _up(128, 128), _short(64, 128)
    self.model10 = nn.Sequential(nn.ReLU(True), nn.Conv2d(128, 128, 3, padding=1),
                                 nn.LeakyReLU(negative_slope=.2))
    self.model_class = nn.Sequential(nn.Conv2d(256, 529, 1))
    self.model_out = nn.Sequential(nn.Conv2d(128, 2, 1), nn.Tanh())

  def forward(self, input_a, input_b, mask_b):
    conv1_2 = self.model1(torch.cat(((input_a - 50) / 100, input_b / 110, mask_b), dim=1))
    conv2_2 = self.model2(conv1_2[:, :, ::2, ::2])
    conv3_3 = self.model3(conv2_2[:, :, ::2, ::2])
    conv4_3 = self.model4(conv3_3[:, :, ::2, ::2])
    conv7_3 = self.model7(self.model6(self.model5(conv4_3)))
    conv8_3 = self.model8(self.model8up(conv7_3) + self.model3short8(conv3_3))
    conv9_3 = self.model9(self.model9up(conv8_3) + self.model2short9(conv2_2))
    conv10_2 = self.model10(self.model10up(conv9_3) + self.model1short10(conv1_2))
    return self.model_out(conv10_2) * 110


def _photos(size):
  return [images.resize_rgb(getattr(skimage.data, name)(), size)
          for name in ('astronaut', 'coffee')]


def _lightness(photos):
  return np.stack([skimage.color.rgb2lab(p)[..., 0] for p in photos]).astype(np.float32)


HINTS = [{'y': 30, 'x': 40, 'ab': [60, -70], 'size': 5},
         {'y': 70, 'x': 20, 'rgb': [250, 200, 20], 'size': 3}]


@pytest.fixture(scope='module')
def released(tmp_path_factory):
  """A random siggraph17 with BatchNorm statistics of real photos, saved as the release is."""
  torch.manual_seed(0)
  net = SIGGRAPH17()
  with torch.no_grad():
    net.model_out[0].weight.mul_(20)  # colours, not tanh's near-zeros
    for module in net.modules():  # statistics of photos, not the defaults 0 and 1
      if isinstance(module, nn.BatchNorm2d):
        module.momentum = 1.0
        module.weight.uniform_(0.5, 1.5)
        module.bias.uniform_(-0.2, 0.2)
    lightness = torch.from_numpy(_lightness(_photos((96, 96)))[:, None])
    planes = torch.from_numpy(np.stack([hints.planes(hints.parse(HINTS), (96, 96), (96, 96))]
                                       * 2).transpose(0, 3, 1, 2))
    net.train()(lightness, planes[:, :2], planes[:, 2:])
  net.eval()
  path = tmp_path_factory.mktemp('release') / 'siggraph17-df00044c.pth'
  torch.save(net.state_dict(), path)
  workdir = import_weights(path, tmp_path_factory.mktemp('runs') / 'siggraph17')
  return net, path, workdir


@pytest.mark.slow
@pytest.mark.parametrize('size', [(96, 128), (136, 80)])
@pytest.mark.parametrize('with_hints', [False, True])
def test_imported_network_gives_pytorchs_ab(released, size, with_hints):
  net, _, workdir = released
  lightness = _lightness(_photos(size))
  parsed = hints.parse(HINTS if with_hints else [])
  planes = np.stack([hints.planes(parsed, size, size)] * len(lightness))
  assert planes[0, ..., 2].sum() == (34 if with_hints else 0)  # 5x5 and 3x3 patches
  with torch.no_grad():
    expected = net(*(torch.from_numpy(x.transpose(0, 3, 1, 2)) for x in (
        lightness[..., None], planes[..., :2], planes[..., 2:]))).numpy().transpose(0, 2, 3, 1)
  colorizer = inference.load(workdir)
  inputs = np.concatenate([lightness[..., None], planes], -1)
  ours = np.asarray(colorizer.predict_ab_batch(jnp.asarray(inputs), np.arange(2)))[0]
  assert ours.shape == expected.shape == (2, *size, 2)
  assert np.abs(expected).max() > 20  # colours: the comparison is not of near-zeros
  assert np.abs(ours - expected).max() <= 0.05
  if not with_hints:  # L alone is automatic colorization, as the published defaults
    np.testing.assert_allclose(colorizer.predict_ab(lightness), ours, atol=1e-4)


@pytest.mark.slow
def test_a_hint_changes_the_colours_near_it_more_than_far_from_it(released):
  _, _, workdir = released
  colorizer = inference.load(workdir, size=(128, 128))
  photo = _photos((256, 256))[1]
  plain = skimage.color.rgb2lab(colorizer(photo))[..., 1:]
  hinted = skimage.color.rgb2lab(colorizer(photo, hints=[
      {'y': 100, 'x': 150, 'ab': [70, 60], 'size': 9}]))[..., 1:]
  change = np.linalg.norm(hinted - plain, axis=-1)
  near, far = change[90:111, 140:161].mean(), change[200:, :50].mean()
  assert near > 5 and near > 4 * far, (near, far)


@pytest.mark.slow
def test_colorize_and_evaluate_use_the_run_with_and_without_hints(released, tmp_path, capsys):
  _, _, workdir = released
  plain = commands.colorize_a_photo(workdir, tmp_path / 'plain')[0]
  (tmp_path / 'hints.json').write_text(json.dumps(
      {'photo.jpg': [{'y': 20, 'x': 30, 'rgb': [20, 60, 250], 'size': 7}]}))
  hinted = commands.colorize_a_photo(workdir, tmp_path / 'hinted',
                                     f'--hints={tmp_path / "hints.json"}')[0]
  change = np.abs(hinted.astype(int) - plain).sum(-1)
  assert change[17:24, 27:34].mean() > change[35:, :15].mean() + 5
  assert evaluate.main([f'--workdir={workdir}', str(tmp_path / 'plain' / 'photo.jpg'),
                        f'--out={tmp_path / "evaluation"}', '--bootstrap=100']) == 0
  assert (tmp_path / 'evaluation' / 'evaluation.json').is_file()


@pytest.mark.slow
def test_import_says_which_network_and_ignores_model_class(released, tmp_path, capsys):
  net, path, _ = released
  capsys.readouterr()
  with pytest.raises(SystemExit) as exit_:
    main.run(['import_weights', str(path), f'--workdir={tmp_path / "run"}'])
  assert exit_.value.code == 0
  assert 'the released siggraph17 network' in capsys.readouterr().out
  state_dict = net.state_dict()
  wrong_shape = dict(state_dict, **{'model9up.0.weight': state_dict['model9up.0.weight'][:64]})
  torch.save(wrong_shape, tmp_path / 'wrong_shape.pth')
  torch.save({'conv.weight': torch.zeros(2, 2)}, tmp_path / 'neither.pth')
  cases = {'wrong_shape.pth': "not a siggraph17 state_dict: 'model9up.0.weight' is "
                              '(64, 128, 4, 4)',
           'neither.pth': "is none of the released networks: its state_dict has no "
                          "'model_out.weight' (eccv16), 'model8up.0.weight' (siggraph17) "
                          "nor 'Mixed_7c.branch_pool.conv.weight' (Inception-v3)"}
  for name, message in cases.items():
    commands.assert_one_line(*commands.run_in_process(
        capsys, 'import_weights', tmp_path / name, f'--workdir={tmp_path / name}.run'), message)


@pytest.mark.slow
def test_hints_files_with_mistakes_are_one_line(released, zhang_run, tmp_path, capsys):
  _, _, workdir = released
  photo = tmp_path / 'photos' / 'photo.png'
  photo.parent.mkdir()
  PIL.Image.fromarray(_photos((40, 48))[0]).save(photo)
  good = {'photo.png': [{'y': 1, 'x': 2, 'ab': [10, 10]}]}
  cases = {
      'not json': 'is not valid JSON',
      '[1]': 'holds list: pass a JSON object of image file -> list of hints',
      json.dumps({'other.png': []}): "'other.png' must name one of the input files",
      json.dumps({'photo.png': [{'y': 1, 'x': 2}]}): 'give its colour as "rgb"',
      json.dumps({'photo.png': [{'y': 1, 'x': 2, 'rgb': [1, 2]}]}): '"rgb" is [1, 2]: pass a '
                                                                    'list of 3 numbers',
      json.dumps({'photo.png': [{'y': 1, 'x': 2, 'ab': [1, 2], 'colour': 3}]}):
          "unknown key 'colour'",
      json.dumps({'photo.png': [{'y': 40, 'x': 2, 'ab': [1, 2]}]}): 'lies outside the photo '
                                                                   '(40x48 pixels',
  }
  for number, (text, message) in enumerate(cases.items()):
    (tmp_path / f'{number}.json').write_text(text)
    commands.assert_one_line(*commands.run_in_process(
        capsys, 'colorize', f'--workdir={workdir}', photo, f'--hints={tmp_path}/{number}.json',
        f'--out={tmp_path}/out'), message)
  (tmp_path / 'good.json').write_text(json.dumps(good))
  commands.assert_one_line(*commands.run_in_process(
      capsys, 'colorize', f'--workdir={zhang_run[0]}', photo, f'--hints={tmp_path}/good.json',
      f'--out={tmp_path}/out'), '--hints applies to a network that takes hints')
  assert not (tmp_path / 'out').exists()
  with pytest.raises(ValueError, match='hint 1: give its position'):
    inference.load(workdir)(_photos((40, 48))[0], hints=[{'ab': [1, 2]}])


def test_hints_cover_their_patch_at_the_working_size():
  (big,) = hints.parse([{'y': 10, 'x': 20, 'ab': [30, -40], 'size': 5}])
  planes = hints.planes([big], (64, 64), (64, 64))
  assert planes[..., 2].sum() == 25 and planes[8:13, 18:23, 2].all()
  np.testing.assert_array_equal(planes[10, 20], [30, -40, 1])
  assert planes[planes[..., 2] == 0].max() == 0  # no colour where no hint is
  small = hints.planes([big], (640, 640), (64, 64))  # a patch smaller than a working pixel
  assert planes[..., 2].sum() == 25 and small[..., 2].sum() == 1 and small[1, 2, 2] == 1
  (red,) = hints.parse([{'y': 0, 'x': 0, 'rgb': [255, 0, 0]}])
  np.testing.assert_allclose(red.ab, skimage.color.rgb2lab(np.array([[[1.0, 0, 0]]]))[0, 0, 1:],
                             atol=0.01)
  with pytest.raises(ValueError, match='"size" is 0: pass a number in'):
    hints.parse([{'y': 0, 'x': 0, 'ab': [0, 0], 'size': 0}])
  with pytest.raises(ValueError, match='hints are a list'):
    hints.parse({'y': 0})



@pytest.mark.slow
def test_published_pipeline_gives_the_authors_demo(released):
  """demo_release.py's siggraph17 path (no hints: the forward's zero defaults) and
  --pipeline=published agree within 60 dB."""
  net, _, workdir = released

  def automatic(lightness):
    zeros = torch.zeros(1, 2, *lightness.shape[2:])
    return net(lightness, zeros, zeros[:, :1])

  colorizer, default = inference.load(workdir, pipeline='published'), inference.load(workdir)
  for photo in _photos((203, 331)):
    expected = test_published.authors_demo(automatic, photo, upsample4=False)
    assert test_published.psnr(colorizer(photo), expected) >= 60
    assert test_published.psnr(default(photo), expected) < 50  # the default is another one
