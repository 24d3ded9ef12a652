"""The programs behind the experiments, chosen by `config.program`. A program provides

  check(config) -> None
      Every mistake a config can hold, as a UsageError (one line, exit status 2), found
      before anything is written.
  main(config, workdir) -> None
      Train resumably (train.loop.fit, or train.supervised.fit_network), evaluate with
      eval.evaluator, and write report.md, figures and metrics_eval.json into `workdir`.

Programs that train colorizers build their networks through their family
(colorjax/families), which inference shares. The library never imports a program: the
command line finds one here, by name.
"""

import importlib
import types

from colorjax.errors import UsageError

MODULES = {
    'norm_ablation': 'colorjax.programs.norm_ablation',
    'zhang': 'colorjax.programs.zhang',
    'zhang_compare': 'colorjax.programs.zhang_compare',
    'yuv_gan': 'colorjax.programs.yuv_gan',
    'unet_portrait': 'colorjax.programs.unet_portrait',
    'flowers_resnet': 'colorjax.programs.flowers_resnet',
    'benchmark': 'colorjax.benchmark.program',
}


def load(name: str) -> types.ModuleType:
  """The program module `name`; one line naming the choices if there is none."""
  if name not in MODULES:
    raise UsageError(f"--config.program={name!r} names no program; choose one of: "
                     f"{', '.join(MODULES)}")
  return importlib.import_module(MODULES[name])
