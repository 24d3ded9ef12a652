"""The programs behind the experiments, one module each, chosen by `config.program`.

Each follows the contract in colorjax/program.py. The library never imports a program:
inference and the command line find one here, by name.
"""

import importlib
import pkgutil
import types

from colorjax.errors import UsageError


def names() -> list[str]:
  return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith('_'))


def load(name: str) -> types.ModuleType:
  """The program module `name`; one line naming the choices if there is none."""
  if name not in names():
    raise UsageError(f"--config.program={name!r} names no program; choose one of: "
                     f"{', '.join(names())}")
  return importlib.import_module(f'{__name__}.{name}')
