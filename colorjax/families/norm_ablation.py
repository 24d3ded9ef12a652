"""The tiny CNN of the Lab normalization ablation: every (scheme, seed) run of a workdir,
stacked along a leading run axis; one run colorizes (a scheme, its first seed)."""

import jax
import jax.numpy as jnp

from colorjax import color, precision
from colorjax.data import images
from colorjax.errors import UsageError
from colorjax.families import spec
from colorjax.models.tiny_cnn import TinyCNN

L_SAMPLE_SHAPE = (1, 8, 8, 1)  # the tiny CNN's weights fit any size


def list_runs(config):
  """The (scheme, seed) pairs, in the order of the state's leading axis."""
  unknown = [s for s in config.schemes if s not in color.NORMALIZATIONS]
  if unknown:
    raise UsageError(f"unknown normalization scheme(s) {', '.join(unknown)}: choose from "
                     f"{', '.join(color.NORMALIZATIONS)} in --config.schemes")
  if not config.seeds or not config.schemes:
    raise UsageError('--config.schemes and --config.seeds must each name at least one value')
  for field in ('schemes', 'seeds'):
    repeated = sorted({str(x) for x in config[field] if config[field].count(x) > 1})
    if repeated:
      raise UsageError(f"--config.{field} repeats {', '.join(repeated)}: name each once (a "
                       'repeated run is the same run, and would shrink the spread it reports)')
  return [(scheme, seed) for scheme in config.schemes for seed in config.seeds]


def network(config) -> TinyCNN:
  return TinyCNN(channels=config.channels, dtype=precision.compute_dtype(config))


def predict_ab(model, norm: color.LabNorm, params, l_nhw1):
  """One run's ab in Lab units from L in Lab units."""
  return norm.denormalize_ab(model.apply({'params': params}, norm.normalize_l(l_nhw1)))


def network_spec(config, workdir, options) -> spec.NetworkSpec:
  """The first seed's run of one scheme (--network=SCHEME; default `unit`), working at the
  size of the photo it learned from."""
  runs = list_runs(config)
  scheme = spec.choose(options, list(config.schemes),
                       'unit' if 'unit' in config.schemes else config.schemes[0])
  index = runs.index((scheme, config.seeds[0]))
  norm = color.NORMALIZATIONS[scheme]
  model = network(config)

  def saved_part():
    one = spec.network_variables(model, jnp.zeros(L_SAMPLE_SHAPE))['params']
    return {'params': jax.tree.map(
        lambda x: jax.ShapeDtypeStruct((len(runs), *x.shape), x.dtype), one)}

  def predict(params, l_nhw1, keys):
    del keys  # deterministic
    return predict_ab(model, norm, params, l_nhw1)

  return spec.NetworkSpec(
      workdir, saved_part, lambda saved: jax.tree.map(lambda x: x[index], saved['params']),
      predict, images.load_image(config.image, config.image_scale).shape[:2])
