"""The U-Net of the portrait write-up, per task: gray -> RGB (3 outputs) or L -> ab (2
outputs, L given); both take L / 100."""

from collections.abc import Callable
from typing import NamedTuple

import jax.numpy as jnp

from colorjax import color, precision
from colorjax.families import spec
from colorjax.models.unet import UNet

SHIFTED = color.NORMALIZATIONS['shifted']  # L / 100, (ab + 128) / 255: the write-up's scaling


class Task(NamedTuple):
  outputs: int
  to_ab: Callable  # (L (N, H, W, 1), the network's output) -> ab in Lab units
  description: str


TASKS = {
    'gray2rgb': Task(3, lambda l_nhw1, rgb: color.rgb_to_lab(jnp.clip(rgb, 0.0, 1.0))[..., 1:],
                     'gray -> RGB'),
    'l2ab': Task(2, lambda l_nhw1, ab: SHIFTED.denormalize_ab(ab), 'L -> ab'),
}


def network(config, task) -> UNet:
  return UNet(TASKS[task].outputs, dropout=config.dropout,
              dtype=precision.compute_dtype(config))


def network_spec(config, workdir, options) -> spec.NetworkSpec:
  """The L -> ab network when the run trained it (the write-up's better one), else gray ->
  RGB; --network picks."""
  task = spec.choose(options, list(config.tasks),
                     'l2ab' if 'l2ab' in config.tasks else config.tasks[0])
  model = network(config, task)
  to_ab = TASKS[task].to_ab

  def predict_ab(variables, l_nhw1, keys):
    del keys  # deterministic
    return to_ab(l_nhw1, model.apply(variables, SHIFTED.normalize_l(l_nhw1)))

  crop = config.data.crop
  return spec.NetworkSpec(
      workdir / task, lambda: spec.network_variables(model, jnp.zeros((1, crop, crop, 1))),
      spec.apply_variables, predict_ab, (crop, crop))
