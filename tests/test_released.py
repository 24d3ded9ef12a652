"""The released Zhang et al. network: the published eccv16 architecture, written here in
PyTorch after richzhang/colorization's eccv16.py, with random weights and BatchNorm
statistics, is imported and must give PyTorch's ab on real photos; the import is a run
that colorizes and trains like any other; files that are not eccv16 are one line."""

import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import skimage.color
import skimage.data
import skimage.transform

from colorjax import inference
from colorjax.data import images
from colorjax.families import zhang
from colorjax.families.spec import Options
from colorjax.train import losses, optim, train_state
from tests import commands

torch = pytest.importorskip('torch')
nn = torch.nn

from colorjax.released import AB_SCALE, import_weights  # noqa: E402


class ECCV16(nn.Module):
  """The published forward: (L - 50) / 100 -> 8 blocks -> softmax -> model_out (bins / 110)
  -> x 110, at 1/4 resolution (the published code then upsamples x 4, bilinear)."""

  def __init__(self, num_bins=313):
    super().__init__()

    def block(cin, cout, convs, stride=1, dilation=1):
      layers = []
      for i in range(convs):
        layers += [nn.Conv2d(cin if i == 0 else cout, cout, 3, padding=dilation,
                             dilation=dilation, stride=stride if i == convs - 1 else 1),
                   nn.ReLU(True)]
      return nn.Sequential(*layers, nn.BatchNorm2d(cout))

    self.model1 = block(1, 64, 2, stride=2)
    self.model2 = block(64, 128, 2, stride=2)
    self.model3 = block(128, 256, 3, stride=2)
    self.model4 = block(256, 512, 3)
    self.model5 = block(512, 512, 3, dilation=2)
    self.model6 = block(512, 512, 3, dilation=2)
    self.model7 = block(512, 512, 3)
    self.model8 = nn.Sequential(
        nn.ConvTranspose2d(512, 256, 4, stride=2, padding=1), nn.ReLU(True),
        nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(True),
        nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(True),
        nn.Conv2d(256, num_bins, 1))
    self.model_out = nn.Conv2d(num_bins, 2, 1, bias=False)

  def forward(self, l_n1hw):
    x = (l_n1hw - 50.0) / 100.0
    for block in (self.model1, self.model2, self.model3, self.model4, self.model5,
                  self.model6, self.model7, self.model8):
      x = block(x)
    return self.model_out(torch.softmax(x, dim=1)) * AB_SCALE


def _photos(size):
  return [images.resize_rgb(getattr(skimage.data, name)(), size)
          for name in ('astronaut', 'coffee')]


@pytest.fixture(scope='module')
def released(tmp_path_factory, bins_313):
  """A random eccv16 with BatchNorm statistics of real photos, saved as the release is."""
  torch.manual_seed(0)
  net = ECCV16()
  bins = bins_313
  with torch.no_grad():
    net.model_out.weight.copy_(torch.from_numpy(bins.T[:, :, None, None] / AB_SCALE))
    net.model8[6].weight.mul_(30)  # a peaked softmax: colours, not the mean of the bins
    for module in net.modules():  # statistics of photos, not the defaults 0 and 1
      if isinstance(module, nn.BatchNorm2d):
        module.momentum = 1.0
        module.weight.uniform_(0.5, 1.5)
        module.bias.uniform_(-0.2, 0.2)
    lightness = np.stack([skimage.color.rgb2lab(p)[..., 0] for p in _photos((96, 96))])
    net.train()(torch.from_numpy(lightness[:, None]).float())
  net.eval()
  path = tmp_path_factory.mktemp('release') / 'eccv16.pth'
  torch.save(net.state_dict(), path)
  workdir = import_weights(path, tmp_path_factory.mktemp('runs') / 'eccv16')
  return net, path, workdir


@pytest.mark.slow
@pytest.mark.parametrize('size', [(256, 256), (203, 331)])
def test_imported_network_gives_pytorchs_ab(released, size):
  net, _, workdir = released
  photos = _photos(size)
  lightness = np.stack([skimage.color.rgb2lab(p)[..., 0] for p in photos]).astype(np.float32)
  with torch.no_grad():
    expected = net(torch.from_numpy(lightness[:, None])).numpy().transpose(0, 2, 3, 1)
  ours = inference.load(workdir).predict_ab(lightness)
  assert ours.shape == expected.shape
  assert np.abs(expected).max() > 20  # colours: the comparison is not of near-zeros
  assert np.abs(ours - expected).max() <= 0.05


@pytest.mark.slow
def test_imported_run_decodes_with_the_published_softmax_and_its_own_bins(released, bins_313):
  _, _, workdir = released
  config, _, _ = inference.run_config(workdir, Options())
  assert config.temperature == 1.0
  np.testing.assert_allclose(zhang.bins(config, workdir), bins_313, atol=1e-4)
  annealed = inference.load(workdir, temperature=0.38).predict_ab(
      np.full((1, 32, 32), 60.0, np.float32))
  plain = inference.load(workdir).predict_ab(np.full((1, 32, 32), 60.0, np.float32))
  assert np.abs(annealed - plain).max() > 0.1  # T applies on top of the published logits


@pytest.mark.slow
def test_fine_tuning_takes_a_step_from_the_imported_weights(released):
  _, _, workdir = released
  config, _, _ = inference.run_config(workdir, Options())
  _, variables = inference.load_network(workdir, Options())
  tx = optim.make_optimizer(config.optimizer)
  state = train_state.TrainState(  # the released weights with a fresh optimizer
      step=jnp.zeros((), jnp.int32), params=variables['params'],
      opt_state=tx.init(variables['params']), batch_stats=variables['batch_stats'],
      key=jax.random.PRNGKey(0))
  bins = zhang.bins(config, workdir)
  model = zhang.network(config, bins)
  loss_fn = losses.rebalanced_soft_cross_entropy(model, bins, np.ones(len(bins)))
  step = jax.jit(train_state.make_train_step(loss_fn, tx))
  batch = {'rgb': np.stack(_photos((64, 64)))}
  new_state, metrics = step(state, batch)
  assert np.isfinite(float(metrics['loss'])) and int(new_state.step) == 1
  changed = jax.tree.map(lambda a, b: not np.array_equal(a, b), state.params, new_state.params)
  assert all(jax.tree.leaves(changed))


@pytest.mark.slow
def test_colorize_uses_an_imported_run(released, tmp_path):
  _, _, workdir = released
  photo = _photos((120, 180))[0]
  rgb = inference.load(workdir)(photo)
  assert rgb.shape == photo.shape
  lightness = [skimage.color.rgb2lab(x)[..., 0] for x in (rgb, photo)]
  assert np.abs(lightness[0] - lightness[1]).max() <= 0.5


@pytest.mark.slow
def test_files_that_are_not_eccv16_are_one_line(released, tmp_path, capsys):
  net, path, _ = released
  state_dict = net.state_dict()
  truncated = tmp_path / 'truncated.pth'
  truncated.write_bytes(path.read_bytes()[:100_000])
  (tmp_path / 'text.pth').write_text('not a pickle')
  wrong_shape = dict(state_dict)
  wrong_shape['model4.0.weight'] = wrong_shape['model4.0.weight'][:256]
  torch.save(wrong_shape, tmp_path / 'wrong_shape.pth')
  missing = {k: v for k, v in state_dict.items() if not k.startswith('model7')}
  torch.save(missing, tmp_path / 'missing.pth')
  torch.save({'weights': [1, 2, 3]}, tmp_path / 'not_tensors.pth')
  cases = {'truncated.pth': 'is not a PyTorch state_dict',
           'text.pth': 'is not a PyTorch state_dict',
           'wrong_shape.pth': "'model4.0.weight' is (256, 256, 3, 3)",
           'missing.pth': "'model7.0.bias' is missing",
           'not_tensors.pth': 'holds no state_dict of tensors',
           'absent.pth': 'not found'}
  for name, message in cases.items():
    commands.assert_one_line(*commands.run_in_process(
        capsys, 'import_weights', tmp_path / name, f'--workdir={tmp_path / name}.run'), message)
    assert not (tmp_path / f'{name}.run' / 'checkpoints').exists()


def test_without_torch_the_command_says_what_to_install(tmp_path, capsys, monkeypatch):
  monkeypatch.setitem(sys.modules, 'torch', None)  # `import torch` raises ImportError
  commands.assert_one_line(*commands.run_in_process(
      capsys, 'import_weights', 'x.pth', f'--workdir={tmp_path}'),
      'needs PyTorch: pip install torch')
