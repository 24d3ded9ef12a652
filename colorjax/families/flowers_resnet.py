"""The flower write-up's colorizer: a ResNet-18 encoder (pretrained as a classifier, or from
scratch) and an upsampling decoder with a sigmoid ab head."""

import jax.numpy as jnp

from colorjax import color, precision
from colorjax.families import spec
from colorjax.models.resnet import ENCODER_STRIDE, ResNetColorizer

SHIFTED = color.NORMALIZATIONS['shifted']  # input L / 100; ab as (ab + 128) / 255 in [0, 1]
COLORIZERS = ('pretrained', 'scratch')


def network(config) -> ResNetColorizer:
  """The colorizer, in the run's compute dtype (one for all three stages: the colorizer runs
  the encoder in the precision the classifier trained it in)."""
  return ResNetColorizer(dtype=precision.compute_dtype(config))


def network_spec(config, workdir, options) -> spec.NetworkSpec:
  """The colorizer with the classifier's encoder, or --network=scratch."""
  run = spec.choose(options, COLORIZERS, 'pretrained')
  model = network(config)

  def predict_ab(variables, l_nhw1, keys):
    del keys  # deterministic
    return SHIFTED.denormalize_ab(model.apply(variables, SHIFTED.normalize_l(l_nhw1)))

  crop = config.colorizer.data.crop
  return spec.NetworkSpec(
      workdir / run, lambda: spec.network_variables(model, jnp.zeros((1, crop, crop, 1))),
      spec.apply_variables, predict_ab, (crop, crop), stride=ENCODER_STRIDE)
