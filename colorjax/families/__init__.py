"""The families: from a run's config, each builds its network and says how it colours
(spec.NetworkSpec). Inference, the evaluator and the programs that train them share these,
so a report's figures come from the code that colorizes a user's photo.

A family has the name of the program that trains it (config.program): norm_ablation (the
tiny CNN), zhang, yuv_gan, unet_portrait, flowers_resnet; siggraph17 is imported only
(colorjax/released.py), with no program.
"""

import importlib

from colorjax.errors import UsageError
from colorjax.families.spec import NetworkSpec, Options

NAMES = ('norm_ablation', 'zhang', 'yuv_gan', 'unet_portrait', 'flowers_resnet', 'siggraph17')


def network_spec(config, workdir, options: Options = Options()) -> NetworkSpec:
  """The trained network of a run (`workdir`, made with `config`) that `options` picks."""
  if config.get('program') not in NAMES:
    raise UsageError(f"{workdir} is a {config.get('program')} run, which trains no colorizer: "
                     'pass the workdir of a training run')
  family = importlib.import_module(f'{__name__}.{config.program}')
  return family.network_spec(config, workdir, options)
