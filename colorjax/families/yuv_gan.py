"""The YUV conditional GAN (Cao et al. 2017): its two networks from a run's config, and the
generator as a colorizer whose noise comes from each image's key."""

import jax
import jax.numpy as jnp

from colorjax import color, precision
from colorjax.families import spec
from colorjax.models.yuv_gan import LAYOUTS, Discriminator, Generator


def networks(config) -> tuple[Generator, Discriminator]:
  layout = LAYOUTS[config.get('networks', 'writeup')]  # runs from before the field: writeup
  dtype = precision.compute_dtype(config)
  return (Generator(noise_layers=config.noise_layers, layout=layout, dtype=dtype),
          Discriminator(batch_norm=config.discriminator_batch_norm, layout=layout, dtype=dtype))


def network_spec(config, workdir, options) -> spec.NetworkSpec:
  """Colours from the generator: `options.samples` keys give that many colorizations."""
  spec.single(options)
  generator, _ = networks(config)
  space = generator.layout.space

  def predict_ab(variables, l_nhw1, keys):
    noise = jax.vmap(lambda key: generator.sample_noise(key, 1)[0])(keys)
    gray = jnp.concatenate([l_nhw1, jnp.zeros((*l_nhw1.shape[:-1], 2), l_nhw1.dtype)], -1)
    y = space.encode(color.lab_to_rgb(gray))[..., :1]  # no colour: R = G = B
    rgb = jnp.clip(space.decode(generator.apply(variables, y, noise)), 0.0, 1.0)
    return color.rgb_to_lab(rgb)[..., 1:]

  crop = config.data.crop
  return spec.NetworkSpec(
      workdir,
      lambda: {'generator': spec.network_variables(
          generator, jnp.zeros((1, crop, crop, 1)), jnp.zeros((1, generator.noise_dim)))},
      lambda saved: spec.apply_variables(saved['generator']), predict_ab, (crop, crop),
      frozenset({'samples'}), fixed_size=True)  # the noise plane is Dense(h w)
