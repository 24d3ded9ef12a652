"""Colorful Image Colorization (Zhang et al. 2016): the network of a zhang_softmax or
zhang_regression run, its bins, and its decoding (the annealed mean of the softmax head, or
the regression head's ab)."""

import jax.numpy as jnp

from colorjax import precision, quantize
from colorjax.families import spec
from colorjax.models.zhang import ZhangNet

# Photos are colorized with their short side at 256 pixels, aspect kept: the scale of the
# paper's 176-pixel crops of ImageNet photos resized to 256. This is not the published demo's
# size: it squashes every photo to 256x256 (--pipeline=published, colorjax/published.py).
SHORT_SIDE = 256
STRIDE = 8  # the network works at 1/8 resolution


def bins(config, workdir):
  """The run's ab bins: config.bins (found in the workdir for an imported network's)."""
  return quantize.run_bins(config.bins, workdir)


def network(config, bins_) -> ZhangNet:
  return ZhangNet(len(bins_) if config.head == 'softmax' else 2, config.width,
                  precision.compute_dtype(config))


def decode_ab(output, bins_, temperature):
  """The network's output -> ab at 1/4 resolution: the annealed mean at `temperature` of the
  softmax head's distribution, or the regression head's output itself (temperature None)."""
  return output if temperature is None else quantize.annealed_mean(output, bins_, temperature)


def network_spec(config, workdir, options) -> spec.NetworkSpec:
  spec.single(options)
  bins_ = bins(config, workdir)
  model = network(config, bins_)
  temperature = None
  if config.head == 'softmax':  # runs from before config.temperature decode at the default
    temperature = options.temperature or config.get('temperature', spec.DEFAULT_TEMPERATURE)

  def predict_ab(variables, l_nhw1, keys):
    del keys  # deterministic
    return decode_ab(model.apply(variables, l_nhw1, train=False), bins_, temperature)

  crop = config.data.crop
  return spec.NetworkSpec(
      workdir, lambda: spec.network_variables(model, jnp.zeros((1, crop, crop, 1))),
      spec.apply_variables, predict_ab, (crop, crop),
      frozenset({'pipeline', 'temperature'} if config.head == 'softmax' else {'pipeline'}),
      stride=STRIDE,
      short_side=SHORT_SIDE)
