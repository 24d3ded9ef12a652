"""The PyTorch reference steps of the benchmark: their networks are colorjax's (the same
parameter count at 64x64; the ResNet, written here rather than taken from torchvision, the
same outputs with colorjax's weights), and each step of the benchmark's families runs."""

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from colorjax import color, quantize
from colorjax.benchmark.family_steps import FAMILIES
from colorjax.models.resnet import ResNetColorizer
from colorjax.models.unet import UNet
from colorjax.models.yuv_gan import LAYOUTS, Discriminator, Generator
from colorjax.models.zhang import ZhangNet

torch = pytest.importorskip('torch')
pytestmark = pytest.mark.slow  # PyTorch's steps: the benchmark's, not the library's

from colorjax.benchmark import torch_reference  # noqa: E402


def _jax_parameter_count(model, *inputs):
  shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), *inputs)
  return sum(int(np.prod(p.shape)) for p in jax.tree.leaves(shapes['params']))


def _jax_models(family):
  """(model, *inputs) of the colorjax network(s) of a family at 64x64."""
  image = jax.ShapeDtypeStruct((1, 64, 64, 1), jnp.float32)
  if family == 'unet':
    return [(UNet(out_channels=3), image)]
  if family == 'gan':
    generator = Generator(layout=LAYOUTS['writeup'])
    return [(generator, image, jax.ShapeDtypeStruct((1, generator.noise_dim), jnp.float32)),
            (Discriminator(layout=LAYOUTS['writeup']),
             jax.ShapeDtypeStruct((1, 64, 64, 3), jnp.float32))]
  if family == 'flowers_resnet':
    return [(ResNetColorizer(), image)]
  outputs = len(quantize.gamut_bins()) if family == 'zhang_softmax' else 2
  return [(ZhangNet(outputs), image)]


@pytest.mark.parametrize('family', FAMILIES)
def test_parameter_count_is_colorjax_networks(family):
  expected = sum(_jax_parameter_count(*model) for model in _jax_models(family))
  assert torch_reference.parameter_count(family) == expected


def _layers(params) -> list[dict]:
  """{'kernel' or 'scale', 'bias'} of each layer of a Flax network, in the order it made them."""
  layers = {}
  for path, value in flax.traverse_util.flatten_dict(params).items():
    layers.setdefault(path[:-1], {})[path[-1]] = torch.from_numpy(np.array(value))
  return list(layers.values())


def test_the_resnet_gives_colorjax_outputs_with_its_weights():
  """Layer for layer: colorjax's initial weights copied into the PyTorch ResNet (its convs
  and BatchNorms in order), both give the same ab (inference mode, 64x64): the same
  strides, paddings, pooling and upsampling."""
  model = ResNetColorizer()
  l_in = np.random.default_rng(0).uniform(0, 1, (2, 64, 64, 1)).astype(np.float32)
  variables = model.init(jax.random.PRNGKey(0), jnp.asarray(l_in))
  net = torch_reference._networks('flowers_resnet', 64, 64)[0].eval()
  modules = [m for m in net.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.BatchNorm2d))]
  with torch.no_grad():
    for module, layer in zip(modules, _layers(variables['params']), strict=True):
      module.weight.copy_(layer['kernel'].permute(3, 2, 0, 1) if 'kernel' in layer
                          else layer['scale'])
      if 'bias' in layer:
        module.bias.copy_(layer['bias'])
    theirs = net(torch.from_numpy(l_in).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()
  np.testing.assert_allclose(theirs, model.apply(variables, jnp.asarray(l_in)), atol=1e-5)


@pytest.mark.parametrize('family', FAMILIES)
def test_train_step_runs(family):
  rgb = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
  timing = torch_reference.time_train_step(family, rgb, steps=1)
  assert set(timing) == {'init_s', 'first_step_s', 'images_per_second'}
  assert all(value > 0 for value in timing.values())


def test_lab_is_colorjax_conversion():
  """The PyTorch steps convert colour as colorjax's do (checked against scikit-image in
  test_color.py): every colour of a random batch within float32 rounding."""
  rgb = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
  rgb[0, 0] = np.arange(8)[:, None] * 3  # dark colours: Lab's linear segment
  ours = torch_reference._lab(torch.from_numpy(rgb).permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
  np.testing.assert_allclose(ours.numpy(), color.lab_from_uint8(rgb), atol=1e-3)
