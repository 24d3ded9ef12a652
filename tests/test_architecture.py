"""The layout's promises, read from the source: the library never imports a program, nothing
imports in a circle (counting the programs that colorjax.programs loads by name), the metric
code is pure, and every experiment names a program that exists."""

import ast
import pathlib

import pytest

from colorjax import configs, programs
from colorjax.errors import UsageError

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / 'colorjax'


def _module_name(path: pathlib.Path) -> str:
  parts = path.relative_to(PACKAGE.parent).with_suffix('').parts
  return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def _imports() -> dict[str, set[str]]:
  """colorjax module -> the colorjax modules it imports (a package's program loader counts
  as importing every program in it)."""
  modules = {_module_name(p): p for p in PACKAGE.rglob('*.py')}
  graph = {}
  for name, path in modules.items():
    targets = set()
    for node in ast.walk(ast.parse(path.read_text())):
      if isinstance(node, ast.Import):
        targets |= {alias.name for alias in node.names}
      elif isinstance(node, ast.ImportFrom) and node.module:  # a submodule, or the module
        targets |= {f'{node.module}.{a.name}' if f'{node.module}.{a.name}' in modules
                    else node.module for a in node.names}
    graph[name] = {t for t in targets if t in modules and t != name}
  graph['colorjax.programs'] |= {m for m in modules if m.startswith('colorjax.programs.')}
  return graph


def test_the_library_never_imports_a_program():
  for module, targets in _imports().items():
    if not module.startswith('colorjax.programs'):
      assert not {t for t in targets if t.startswith('colorjax.programs.')}, module


def test_there_is_no_import_cycle():
  graph = _imports()
  state = {}

  def visit(module, path):
    state[module] = 'open'
    for target in sorted(graph[module]):
      assert state.get(target) != 'open', ' -> '.join(path + [target])
      if target not in state:
        visit(target, path + [target])
    state[module] = 'done'

  for module in sorted(graph):
    if module not in state:
      visit(module, [module])


def test_metrics_are_pure():
  imported = _imports()['colorjax.evaluate']
  source = (PACKAGE / 'evaluate.py').read_text()
  assert not imported & {'colorjax.data', 'colorjax.distributed'} and 'tqdm' not in source


def test_every_experiment_and_variant_names_an_existing_program():
  for name in configs.list_experiments():
    for spec in (name, *(f'{name}:{v}' for v in configs.variants(name))):
      assert programs.load(configs.load_config(spec).program).main, spec


def test_a_program_name_outside_the_programs_folder_is_refused():
  for name in ('train', 'colorize', 'os', '../colorjax/train'):
    with pytest.raises(UsageError, match='names no program'):
      programs.load(name)
