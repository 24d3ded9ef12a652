"""Inception-v3 (Szegedy et al. 2016) for FID: torchvision's Inception3 in eval mode, NHWC, up
to its final average pool (the 2048 features FID compares), with the released weights of
torchvision's `inception_v3_google-1a9a5a14.pth`.

Layer for layer as torchvision/models/inception.py with transform_input=False: every conv is a
BasicConv2d (conv without bias, BatchNorm with epsilon 0.001, ReLU) with torchvision's padding;
branch average pools are 3x3, stride 1, padding 1, counting the padding's zeros (F.avg_pool2d's
defaults), max pools 3x3 stride 2 unpadded; branches are concatenated in torchvision's order.
Dropout, fc and the AuxLogits head come after the pool or beside it and are not built. Module
names are torchvision's attributes (Mixed_5b/branch5x5_1/conv), so `variables_from_torchvision`
maps state_dict keys by name. Convolutions run at Precision.HIGHEST: float32 on every backend
(no TF32 on GPUs), so features and FIDs do not depend on the accelerator.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from colorjax.errors import UsageError

SIZE = 299  # the network's input side, to which FID scripts resize every image
FILE = 'inception_v3_google-1a9a5a14.pth'
MARKER = 'Mixed_7c.branch_pool.conv.weight'  # a key of torchvision's Inception-v3 state_dict
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)  # torchvision's transform_input
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)
IGNORED_PREFIXES = ('AuxLogits.', 'fc.')  # the heads FID does not use
# Flax variable leaf -> the name of its tensor in a torchvision BasicConv2d's conv or bn.
TORCH_NAMES = {'kernel': 'weight', 'scale': 'weight', 'bias': 'bias', 'mean': 'running_mean',
               'var': 'running_var'}


def _pair(value) -> tuple:
  return (value, value) if isinstance(value, int) else tuple(value)


class BasicConv2d(nn.Module):
  """torchvision's BasicConv2d: conv (no bias), BatchNorm (epsilon 0.001), ReLU; kernel_size,
  stride and padding as torch's Conv2d takes them (an int or (h, w))."""
  features: int
  kernel_size: int | tuple = 1
  stride: int = 1
  padding: int | tuple = 0

  @nn.compact
  def __call__(self, x):
    x = nn.Conv(self.features, _pair(self.kernel_size), self.stride,
                padding=[(p, p) for p in _pair(self.padding)], use_bias=False,
                precision=jax.lax.Precision.HIGHEST, name='conv')(x)
    return nn.relu(nn.BatchNorm(use_running_average=True, epsilon=1e-3, name='bn')(x))


def _1xn(features, n, name):
  """A 1 x n conv that keeps the size (torchvision's (1, 7) / padding (0, 3), (1, 3) / (0, 1))."""
  return BasicConv2d(features, (1, n), padding=(0, n // 2), name=name)


def _nx1(features, n, name):
  return BasicConv2d(features, (n, 1), padding=(n // 2, 0), name=name)


def _avg_pool(x):
  """F.avg_pool2d(x, 3, stride=1, padding=1): the padding's zeros count in the mean."""
  return nn.avg_pool(x, (3, 3), padding=((1, 1), (1, 1)), count_include_pad=True)


def _max_pool(x):
  return nn.max_pool(x, (3, 3), strides=(2, 2))


def _chain(x, *layers):
  for layer in layers:
    x = layer(x)
  return x


def _concat(*branches):
  return jnp.concatenate(branches, axis=-1)


class InceptionA(nn.Module):
  """35x35: 1x1, 5x5, double 3x3 and pooled 1x1 branches, 224 + pool_features channels."""
  pool_features: int

  @nn.compact
  def __call__(self, x):
    return _concat(
        BasicConv2d(64, name='branch1x1')(x),
        _chain(x, BasicConv2d(48, name='branch5x5_1'),
               BasicConv2d(64, 5, padding=2, name='branch5x5_2')),
        _chain(x, BasicConv2d(64, name='branch3x3dbl_1'),
               BasicConv2d(96, 3, padding=1, name='branch3x3dbl_2'),
               BasicConv2d(96, 3, padding=1, name='branch3x3dbl_3')),
        BasicConv2d(self.pool_features, name='branch_pool')(_avg_pool(x)))


class InceptionB(nn.Module):
  """35x35 -> 17x17: strided 3x3, double 3x3 and max-pool branches."""

  @nn.compact
  def __call__(self, x):
    return _concat(
        BasicConv2d(384, 3, 2, name='branch3x3')(x),
        _chain(x, BasicConv2d(64, name='branch3x3dbl_1'),
               BasicConv2d(96, 3, padding=1, name='branch3x3dbl_2'),
               BasicConv2d(96, 3, 2, name='branch3x3dbl_3')),
        _max_pool(x))


class InceptionC(nn.Module):
  """17x17: 1x1, factorized 7x7, double factorized 7x7 and pooled 1x1 branches, 768 channels."""
  channels_7x7: int

  @nn.compact
  def __call__(self, x):
    c7 = self.channels_7x7
    return _concat(
        BasicConv2d(192, name='branch1x1')(x),
        _chain(x, BasicConv2d(c7, name='branch7x7_1'), _1xn(c7, 7, 'branch7x7_2'),
               _nx1(192, 7, 'branch7x7_3')),
        _chain(x, BasicConv2d(c7, name='branch7x7dbl_1'), _nx1(c7, 7, 'branch7x7dbl_2'),
               _1xn(c7, 7, 'branch7x7dbl_3'), _nx1(c7, 7, 'branch7x7dbl_4'),
               _1xn(192, 7, 'branch7x7dbl_5')),
        BasicConv2d(192, name='branch_pool')(_avg_pool(x)))


class InceptionD(nn.Module):
  """17x17 -> 8x8: strided 3x3, factorized 7x7 then strided 3x3, and max-pool branches."""

  @nn.compact
  def __call__(self, x):
    return _concat(
        _chain(x, BasicConv2d(192, name='branch3x3_1'),
               BasicConv2d(320, 3, 2, name='branch3x3_2')),
        _chain(x, BasicConv2d(192, name='branch7x7x3_1'), _1xn(192, 7, 'branch7x7x3_2'),
               _nx1(192, 7, 'branch7x7x3_3'), BasicConv2d(192, 3, 2, name='branch7x7x3_4')),
        _max_pool(x))


def _fork(x, name):
  """InceptionE's 1x3 and 3x1 convs of the same input, concatenated in that order."""
  return _concat(_1xn(384, 3, f'{name}a')(x), _nx1(384, 3, f'{name}b')(x))


class InceptionE(nn.Module):
  """8x8: 1x1, forked 3x3, double forked 3x3 and pooled 1x1 branches, 2048 channels."""

  @nn.compact
  def __call__(self, x):
    return _concat(
        BasicConv2d(320, name='branch1x1')(x),
        _fork(BasicConv2d(384, name='branch3x3_1')(x), 'branch3x3_2'),
        _fork(_chain(x, BasicConv2d(448, name='branch3x3dbl_1'),
                     BasicConv2d(384, 3, padding=1, name='branch3x3dbl_2')), 'branch3x3dbl_3'),
        BasicConv2d(192, name='branch_pool')(_avg_pool(x)))


class InceptionV3(nn.Module):
  """Image NHWC, RGB in [-1, 1], 299x299 -> (N, 2048) average-pooled Mixed_7c features."""

  @nn.compact
  def __call__(self, x_nhwc):
    x = _chain(x_nhwc, BasicConv2d(32, 3, 2, name='Conv2d_1a_3x3'),
               BasicConv2d(32, 3, name='Conv2d_2a_3x3'),
               BasicConv2d(64, 3, padding=1, name='Conv2d_2b_3x3'), _max_pool,
               BasicConv2d(80, name='Conv2d_3b_1x1'), BasicConv2d(192, 3, name='Conv2d_4a_3x3'),
               _max_pool)
    for name, pool_features in (('Mixed_5b', 32), ('Mixed_5c', 64), ('Mixed_5d', 64)):
      x = InceptionA(pool_features, name=name)(x)
    x = InceptionB(name='Mixed_6a')(x)
    for name, channels_7x7 in (('Mixed_6b', 128), ('Mixed_6c', 160), ('Mixed_6d', 160),
                               ('Mixed_6e', 192)):
      x = InceptionC(channels_7x7, name=name)(x)
    x = InceptionD(name='Mixed_7a')(x)
    x = InceptionE(name='Mixed_7b')(x)
    x = InceptionE(name='Mixed_7c')(x)
    return x.mean(axis=(1, 2))


def fid_input(rgb_nhwc):
  """RGB in [0, 1], (N, H, W, 3) of any size -> the network's input, exactly as the published
  table's FID script (DDColor's basicsr/metrics/custom_fid.py, INCEPTION_V3_FID) makes it:
  resized to 299x299 bilinearly without antialiasing (its F.interpolate(mode='bilinear'),
  align_corners=False; jax.image.resize's half-pixel 'linear' is the same interpolation), then
  `x * 0.5 + 0.5` (written for [-1, 1] input) and torchvision's transform_input (written for
  ImageNet-normalized input). Together: std * x + std + 2 * mean - 1 per channel, not the
  [-1, 1] the Google weights were trained on; but a FID set beside that table must see what
  its script saw (docs/evaluation.md)."""
  x = jax.image.resize(jnp.asarray(rgb_nhwc, jnp.float32), (rgb_nhwc.shape[0], SIZE, SIZE, 3),
                       'linear', antialias=False)
  return (0.5 * x + 0.5) * (IMAGENET_STD / 0.5) + (IMAGENET_MEAN - 0.5) / 0.5


def fid_features(variables, rgb_nhwc):
  """RGB in [0, 1], (N, H, W, 3) of any size -> (N, 2048) float32: the final-pool features the
  published table's FID compares (fid_input, then InceptionV3). Pure: the caller jits it (one
  compilation per input shape)."""
  return InceptionV3().apply(variables, fid_input(rgb_nhwc))


def abstract_variables() -> dict:
  """{'params', 'batch_stats'} of InceptionV3 as shapes and dtypes, computing nothing."""
  return jax.eval_shape(InceptionV3().init, jax.random.PRNGKey(0),
                        jax.ShapeDtypeStruct((1, SIZE, SIZE, 3), jnp.float32))


def _torch_key(path) -> str:
  """('params' or 'batch_stats', module names..., leaf) -> its state_dict key."""
  _, *modules, leaf = (entry.key for entry in path)
  return '.'.join([*modules, TORCH_NAMES[leaf]])


def _torch_shape(path, leaf) -> tuple:
  """A variable's shape as torchvision stores it: kernels OIHW, Flax's HWIO."""
  return tuple(leaf.shape[i] for i in (3, 2, 0, 1)) if path[-1].key == 'kernel' else leaf.shape


def variables_from_torchvision(state_dict: dict[str, np.ndarray]) -> dict:
  """{'params', 'batch_stats'} of InceptionV3 from torchvision's Inception-v3 state_dict
  (AuxLogits, fc and num_batches_tracked are left out); one line naming the first key or
  shape that is not the network's."""
  shapes = abstract_variables()
  expected = {_torch_key(path): _torch_shape(path, leaf)
              for path, leaf in jax.tree_util.tree_leaves_with_path(shapes)}
  used = {key: value for key, value in state_dict.items()
          if not key.startswith(IGNORED_PREFIXES) and not key.endswith('.num_batches_tracked')}
  for key in sorted(set(expected) | set(used)):
    found = np.shape(used[key]) if key in used else 'missing'
    if found != expected.get(key):
      raise UsageError(f"not torchvision's Inception-v3 state_dict: '{key}' is {found}, the "
                       f"network has {expected.get(key, 'no such key')}; pass {FILE}")

  def convert(path, _):
    array = np.asarray(used[_torch_key(path)], np.float32)
    return np.ascontiguousarray(array.transpose(2, 3, 1, 0) if array.ndim == 4 else array)

  return jax.tree_util.tree_map_with_path(convert, shapes)
