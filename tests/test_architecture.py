"""The layout's promises, read from the source: the library never imports a program or the
benchmark, inference imports no training program (not even at run time), nothing imports in
a circle, the metrics are pure, torch is imported by the benchmark's reference alone, every
experiment names a program, and docs/DESIGN.md lists every module there is."""

import ast
import pathlib
import re
import subprocess
import sys

import pytest

from colorjax import configs, programs
from colorjax.errors import UsageError

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = ROOT / 'colorjax'
# Packages that load their members by name (importlib): each counts as importing them all.
REGISTRIES = ('colorjax.programs', 'colorjax.families')


def _module_name(path: pathlib.Path) -> str:
  parts = path.relative_to(PACKAGE.parent).with_suffix('').parts
  return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def _modules() -> dict[str, pathlib.Path]:
  return {_module_name(p): p for p in PACKAGE.rglob('*.py')}


def _imported(node, modules) -> set[str]:
  """The modules an import statement imports: `from a import b` imports the module a.b
  where there is one, else a."""
  if isinstance(node, ast.Import):
    return {alias.name for alias in node.names}
  if not node.module:
    return set()
  return {f'{node.module}.{a.name}' if f'{node.module}.{a.name}' in modules else node.module
          for a in node.names}


def _imports() -> dict[str, set[str]]:
  """colorjax module -> the colorjax modules it imports, at any depth of its code (a
  registry counts as importing every module in its package)."""
  modules = _modules()
  graph = {}
  for name, path in modules.items():
    nodes = [node for node in ast.walk(ast.parse(path.read_text()))
             if isinstance(node, (ast.Import, ast.ImportFrom))]
    graph[name] = {t for node in nodes for t in _imported(node, modules)
                   if t in modules and t != name}
  for registry in REGISTRIES:
    graph[registry] |= {m for m in modules if m.startswith(f'{registry}.')}
  return graph


def _reachable(graph, start) -> set[str]:
  seen, todo = set(), [start]
  while todo:
    for target in graph[todo.pop()] - seen:
      seen.add(target)
      todo.append(target)
  return seen


def test_the_library_never_imports_a_program_or_the_benchmark():
  for module, targets in _imports().items():
    if not module.startswith(('colorjax.programs', 'colorjax.benchmark', 'colorjax.cli')):
      assert not {t for t in targets if t.startswith('colorjax.programs')}, module
    if not module.startswith('colorjax.benchmark'):
      assert not {t for t in targets if t.startswith('colorjax.benchmark')}, module


def test_inference_reaches_no_program_and_no_command_line():
  reached = _reachable(_imports(), 'colorjax.inference')
  assert 'colorjax.families.zhang' in reached  # the registry's members are counted
  assert not {m for m in reached if m.startswith(('colorjax.programs', 'colorjax.cli',
                                                  'colorjax.benchmark'))}


@pytest.mark.slow
def test_colorizing_a_photo_imports_no_training_program(zhang_run):
  root, _, _ = zhang_run
  code = ('import sys, numpy as np, colorjax\n'
          f'colorjax.load({str(root)!r})(np.zeros((8, 8, 3), np.uint8))\n'
          "loaded = [m for m in sys.modules if m.startswith(('colorjax.programs', "
          "'colorjax.train.loop', 'colorjax.train.supervised', 'colorjax.cli', 'torch', "
          "'tensorflow'))]\n"
          'assert not loaded, loaded\n')
  subprocess.run([sys.executable, '-c', code], cwd=ROOT, check=True, timeout=300)


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
  imported = _reachable(_imports(), 'colorjax.eval.metrics')
  source = (PACKAGE / 'eval' / 'metrics.py').read_text()
  assert not imported and 'tqdm' not in source


def test_torch_is_imported_by_the_benchmarks_reference_alone_and_lazily_elsewhere():
  """At module level: importing colorjax never loads torch (nor, with a CUDA build,
  triton's LLVM beside TensorFlow's)."""
  modules = _modules()
  for name, path in modules.items():
    module_level = {t for node in ast.parse(path.read_text()).body
                    if isinstance(node, (ast.Import, ast.ImportFrom))
                    for t in _imported(node, modules)}
    if name != 'colorjax.benchmark.torch_reference':
      assert not {t for t in module_level if t.split('.')[0] == 'torch'}, name


def test_every_experiment_and_variant_names_an_existing_program():
  for name in configs.list_experiments():
    for spec in (name, *(f'{name}:{v}' for v in configs.variants(name))):
      assert programs.load(configs.load_config(spec).program).main, spec


def test_a_program_name_outside_the_registry_is_refused():
  for name in ('train', 'colorize', 'os', '../colorjax/train'):
    with pytest.raises(UsageError, match='names no program'):
      programs.load(name)


def test_the_design_document_lists_every_module():
  design = (ROOT / 'docs' / 'DESIGN.md').read_text()
  layout = design.split('## Layout', 1)[1].split('```', 2)[1]
  listed = set(re.findall(r'[\w/]+\.py', layout)) - {'run.py'}
  present = {str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob('*.py')}
  assert listed == present, (sorted(present - listed), sorted(listed - present))
