"""Inception-v3 for FID: torchvision's Inception3, written here in PyTorch after
torchvision/models/inception.py (torchvision's wheel does not import beside the CPU torch
installed here) with random weights and BatchNorm statistics of real photos, is converted and
must give PyTorch's pool features, through the resize and scaling of the published table's
FID script (DDColor's custom_fid.py); state_dicts that
are not the network's are one line naming the key."""

import jax
import numpy as np
import pytest
import skimage.data

from colorjax import released, xla_cpu
from colorjax.data import images
from colorjax.errors import UsageError
from colorjax.models.inception import SIZE, fid_features, fid_input, variables_from_torchvision
from tests import commands

torch = pytest.importorskip('torch')
nn, F = torch.nn, torch.nn.functional

PHOTOS = ('astronaut', 'coffee', 'chelsea', 'rocket')


class BasicConv2d(nn.Module):
  def __init__(self, cin, cout, **kwargs):
    super().__init__()
    self.conv = nn.Conv2d(cin, cout, bias=False, **kwargs)
    self.bn = nn.BatchNorm2d(cout, eps=0.001)

  def forward(self, x):
    return F.relu(self.bn(self.conv(x)))


def _avg_pool(x):
  return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1)


class InceptionA(nn.Module):
  def __init__(self, cin, pool_features):
    super().__init__()
    self.branch1x1 = BasicConv2d(cin, 64, kernel_size=1)
    self.branch5x5_1 = BasicConv2d(cin, 48, kernel_size=1)
    self.branch5x5_2 = BasicConv2d(48, 64, kernel_size=5, padding=2)
    self.branch3x3dbl_1 = BasicConv2d(cin, 64, kernel_size=1)
    self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
    self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, padding=1)
    self.branch_pool = BasicConv2d(cin, pool_features, kernel_size=1)

  def forward(self, x):
    return torch.cat([
        self.branch1x1(x), self.branch5x5_2(self.branch5x5_1(x)),
        self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
        self.branch_pool(_avg_pool(x))], 1)


class InceptionB(nn.Module):
  def __init__(self, cin):
    super().__init__()
    self.branch3x3 = BasicConv2d(cin, 384, kernel_size=3, stride=2)
    self.branch3x3dbl_1 = BasicConv2d(cin, 64, kernel_size=1)
    self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
    self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, stride=2)

  def forward(self, x):
    return torch.cat([
        self.branch3x3(x), self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
        F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class InceptionC(nn.Module):
  def __init__(self, cin, channels_7x7):
    super().__init__()
    c7 = channels_7x7
    self.branch1x1 = BasicConv2d(cin, 192, kernel_size=1)
    self.branch7x7_1 = BasicConv2d(cin, c7, kernel_size=1)
    self.branch7x7_2 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
    self.branch7x7_3 = BasicConv2d(c7, 192, kernel_size=(7, 1), padding=(3, 0))
    self.branch7x7dbl_1 = BasicConv2d(cin, c7, kernel_size=1)
    self.branch7x7dbl_2 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
    self.branch7x7dbl_3 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
    self.branch7x7dbl_4 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
    self.branch7x7dbl_5 = BasicConv2d(c7, 192, kernel_size=(1, 7), padding=(0, 3))
    self.branch_pool = BasicConv2d(cin, 192, kernel_size=1)

  def forward(self, x):
    dbl = x
    for i in range(1, 6):
      dbl = getattr(self, f'branch7x7dbl_{i}')(dbl)
    return torch.cat([
        self.branch1x1(x), self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x))), dbl,
        self.branch_pool(_avg_pool(x))], 1)


class InceptionD(nn.Module):
  def __init__(self, cin):
    super().__init__()
    self.branch3x3_1 = BasicConv2d(cin, 192, kernel_size=1)
    self.branch3x3_2 = BasicConv2d(192, 320, kernel_size=3, stride=2)
    self.branch7x7x3_1 = BasicConv2d(cin, 192, kernel_size=1)
    self.branch7x7x3_2 = BasicConv2d(192, 192, kernel_size=(1, 7), padding=(0, 3))
    self.branch7x7x3_3 = BasicConv2d(192, 192, kernel_size=(7, 1), padding=(3, 0))
    self.branch7x7x3_4 = BasicConv2d(192, 192, kernel_size=3, stride=2)

  def forward(self, x):
    branch7x7x3 = x
    for i in range(1, 5):
      branch7x7x3 = getattr(self, f'branch7x7x3_{i}')(branch7x7x3)
    return torch.cat([self.branch3x3_2(self.branch3x3_1(x)), branch7x7x3,
                      F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class InceptionE(nn.Module):
  def __init__(self, cin):
    super().__init__()
    self.branch1x1 = BasicConv2d(cin, 320, kernel_size=1)
    self.branch3x3_1 = BasicConv2d(cin, 384, kernel_size=1)
    self.branch3x3_2a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
    self.branch3x3_2b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
    self.branch3x3dbl_1 = BasicConv2d(cin, 448, kernel_size=1)
    self.branch3x3dbl_2 = BasicConv2d(448, 384, kernel_size=3, padding=1)
    self.branch3x3dbl_3a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
    self.branch3x3dbl_3b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
    self.branch_pool = BasicConv2d(cin, 192, kernel_size=1)

  def forward(self, x):
    branch3x3 = self.branch3x3_1(x)
    dbl = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
    return torch.cat([
        self.branch1x1(x),
        torch.cat([self.branch3x3_2a(branch3x3), self.branch3x3_2b(branch3x3)], 1),
        torch.cat([self.branch3x3dbl_3a(dbl), self.branch3x3dbl_3b(dbl)], 1),
        self.branch_pool(_avg_pool(x))], 1)


class InceptionAux(nn.Module):
  """Built for its state_dict keys only: eval mode never runs it."""

  def __init__(self, cin, num_classes):
    super().__init__()
    self.conv0 = BasicConv2d(cin, 128, kernel_size=1)
    self.conv1 = BasicConv2d(128, 768, kernel_size=5)
    self.fc = nn.Linear(768, num_classes)


class Inception3(nn.Module):
  """torchvision's Inception3 (aux_logits, transform_input=False); forward returns the pooled
  2048 features that FID uses, before dropout and fc."""

  def __init__(self, num_classes=1000):
    super().__init__()
    self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2)
    self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
    self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
    self.maxpool1 = nn.MaxPool2d(kernel_size=3, stride=2)
    self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
    self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
    self.maxpool2 = nn.MaxPool2d(kernel_size=3, stride=2)
    self.Mixed_5b = InceptionA(192, pool_features=32)
    self.Mixed_5c = InceptionA(256, pool_features=64)
    self.Mixed_5d = InceptionA(288, pool_features=64)
    self.Mixed_6a = InceptionB(288)
    self.Mixed_6b = InceptionC(768, channels_7x7=128)
    self.Mixed_6c = InceptionC(768, channels_7x7=160)
    self.Mixed_6d = InceptionC(768, channels_7x7=160)
    self.Mixed_6e = InceptionC(768, channels_7x7=192)
    self.AuxLogits = InceptionAux(768, num_classes)
    self.Mixed_7a = InceptionD(768)
    self.Mixed_7b = InceptionE(1280)
    self.Mixed_7c = InceptionE(2048)
    self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
    self.fc = nn.Linear(2048, num_classes)

  def forward(self, x):
    for name, module in self.named_children():
      if name not in ('AuxLogits', 'fc'):
        x = module(x)
    return torch.flatten(x, 1)


def _photos(size) -> np.ndarray:
  """The photos as RGB floats in [0, 1], (N, h, w, 3)."""
  return np.stack([images.resize_rgb(getattr(skimage.data, name)(), size)
                   for name in PHOTOS]).astype(np.float32) / 255


def _nchw(x_nhwc):
  return torch.from_numpy(np.ascontiguousarray(x_nhwc.transpose(0, 3, 1, 2)))


def _torch_fid_input(rgb_nhwc):
  """What DDColor's INCEPTION_V3_FID.forward feeds its network (RGB in [0, 1]): the resize,
  then its two rescalings, written as that script writes them."""
  x = F.interpolate(_nchw(rgb_nhwc), size=(SIZE, SIZE), mode='bilinear', align_corners=False)
  x = x.clone() * 0.5 + 0.5
  x[:, 0] = x[:, 0] * (0.229 / 0.5) + (0.485 - 0.5) / 0.5
  x[:, 1] = x[:, 1] * (0.224 / 0.5) + (0.456 - 0.5) / 0.5
  x[:, 2] = x[:, 2] * (0.225 / 0.5) + (0.406 - 0.5) / 0.5
  return x


@pytest.fixture(scope='module')
def reference():
  """(net, state_dict as NumPy): a random Inception3 with BatchNorm statistics of photos."""
  torch.manual_seed(0)
  net = Inception3()
  with torch.no_grad():
    for module in net.modules():  # statistics of photos, not the defaults 0 and 1
      if isinstance(module, nn.BatchNorm2d):
        module.momentum = 1.0
        module.weight.uniform_(0.5, 1.5)
        module.bias.uniform_(-0.2, 0.2)
    net.train()(_torch_fid_input(_photos((SIZE, SIZE))))
  net.eval()
  return net, {key: value.numpy() for key, value in net.state_dict().items()}


def test_reference_has_torchvisions_parameter_count(reference):
  net, _ = reference
  assert sum(p.numel() for p in net.parameters()) == 27_161_264  # inception_v3's, aux included


@pytest.mark.slow
@pytest.mark.parametrize('size', [(256, 256), (201, 333)])
def test_features_are_pytorchs(reference, size):
  net, state_dict = reference
  rgb = _photos(size)
  with torch.no_grad():
    expected = net(_torch_fid_input(rgb)).numpy()
  ours = np.asarray(xla_cpu.jit(fid_features)(variables_from_torchvision(state_dict), rgb))
  assert ours.shape == expected.shape == (len(PHOTOS), 2048) and ours.dtype == np.float32
  assert np.abs(ours - expected).max() <= 1e-3 * np.abs(expected).max()
  relative = np.linalg.norm(ours - expected, axis=1) / np.linalg.norm(expected, axis=1)
  assert relative.max() < 1e-3, relative


@pytest.mark.parametrize('size', [(37, 50), (640, 480), (150, 512)])  # up, down, both
def test_the_input_is_the_published_scripts(size):
  rgb = np.random.default_rng(0).random((2, *size, 3), np.float32)
  expected = _torch_fid_input(rgb).numpy().transpose(0, 2, 3, 1)
  np.testing.assert_allclose(jax.jit(fid_input)(rgb), expected, rtol=0, atol=2e-6)


def test_a_state_dict_that_is_not_the_networks_is_one_line_naming_the_key(reference):
  _, state_dict = reference
  missing = dict(state_dict)
  del missing['Mixed_6c.branch7x7_2.bn.running_var']
  wrong_shape = dict(state_dict)
  wrong_shape['Mixed_5b.branch_pool.conv.weight'] = state_dict[
      'Mixed_5b.branch_pool.conv.weight'][:16]
  cases = {"'Mixed_6c.branch7x7_2.bn.running_var' is missing, the network has (160,)": missing,
           "'Mixed_5b.branch_pool.conv.weight' is (16, 192, 1, 1), the network has "
           '(32, 192, 1, 1)': wrong_shape,
           "'Mixed_7c.extra.weight' is (3,), the network has no such key":
               dict(state_dict, **{'Mixed_7c.extra.weight': np.zeros(3)})}
  for message, bad in cases.items():
    with pytest.raises(UsageError, match='inception_v3_google-1a9a5a14.pth') as error:
      variables_from_torchvision(bad)
    assert message in str(error.value) and '\n' not in str(error.value)


@pytest.mark.slow
def test_import_weights_keeps_the_network_for_every_runs_fid(reference, tmp_path, monkeypatch,
                                                              capsys):
  """`run.py import_weights` on torchvision's file writes the Flax variables once per user
  (no PyTorch needed after); evaluate reads them back, or the .pth itself, identically. A
  --workdir is a mistake here: one line, nothing written."""
  net, state_dict = reference
  monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'cache'))
  assert released.fid_variables() is None
  path = tmp_path / 'inception_v3_google-1a9a5a14.pth'
  torch.save(net.state_dict(), path)
  code, err = commands.run_in_process(capsys, 'import_weights', path, f'--workdir={tmp_path}/r')
  commands.assert_one_line(code, err, 'leave --workdir out')
  assert not (tmp_path / 'r').exists() and not (tmp_path / 'cache').exists()
  code, _ = commands.run_in_process(capsys, 'import_weights', path)
  assert code == 0 and released.fid_weights_file().is_file()
  assert released.fid_weights_file().is_relative_to(tmp_path / 'cache')
  expected = jax.tree.leaves(variables_from_torchvision(state_dict))
  for read in (released.fid_variables(), released.fid_variables(path)):
    for a, b in zip(jax.tree.leaves(read), expected, strict=True):
      np.testing.assert_array_equal(a, b)
