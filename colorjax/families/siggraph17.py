"""Real-Time User-Guided Image Colorization (Zhang et al. 2017): the released siggraph17
network, imported with `run.py import_weights` (colorjax trains it not). Its predictor takes
L alone (automatic colorization: no hints, as the published forward's defaults) or L with
the user's hints (colorjax/hints.py: hint ab and a 0/1 mask, 4 channels), and gives ab at
the resolution it was given."""

import jax.numpy as jnp

from colorjax import precision
from colorjax.families import spec
from colorjax.families.zhang import SHORT_SIDE
from colorjax.models.siggraph17 import STRIDE, SiggraphNet

SIZE = (176, 176)  # the paper's training crops


def network(config) -> SiggraphNet:
  return SiggraphNet(precision.compute_dtype(config))


def network_spec(config, workdir, options) -> spec.NetworkSpec:
  spec.single(options)
  model = network(config)

  def predict_ab(variables, l_nhwc, keys):
    del keys  # deterministic
    return model.apply(variables, l_nhwc, train=False)

  return spec.NetworkSpec(
      workdir, lambda: spec.network_variables(model, jnp.zeros((1, *SIZE, 4))),
      spec.apply_variables, predict_ab, SIZE, stride=STRIDE, short_side=SHORT_SIDE, hints=True,
      uses=frozenset({'pipeline'}))
