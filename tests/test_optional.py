"""Optional packages: a missing one is one note line, once; torch never loads triton into a
process that loaded TensorFlow (their two LLVMs abort it)."""

import sys
import types

import pytest

from colorjax import optional


def test_a_missing_package_is_one_note_line_once(capsys):
  optional.load.cache_clear()
  for _ in range(2):
    assert optional.load('colorjax_no_such_package', 'no widgets', 'widgets') is None
  assert capsys.readouterr().err.splitlines() == [
      'note: widgets is not installed: no widgets (pip install widgets)']


def test_an_installed_package_is_returned_without_a_note(capsys):
  assert optional.load('json', 'no json', 'json') is sys.modules['json']
  assert capsys.readouterr().err == ''


@pytest.mark.parametrize('loaded', [('tensorflow',), ('tensorflow', 'triton'), ()])
def test_triton_is_kept_out_only_beside_tensorflow_and_before_it_loads(monkeypatch, loaded):
  """`import tensorflow; import torch._dynamo` aborts where torch is a CUDA build (triton):
  after TensorFlow, triton must not import; a triton already loaded, or no TensorFlow,
  is left alone."""
  for name in ('tensorflow', 'triton'):  # each restored as it was after the test
    monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.delitem(sys.modules, name)
  for name in loaded:
    monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
  optional.keep_triton_from_tensorflow()
  if loaded == ('tensorflow',):
    with pytest.raises(ImportError):
      import triton  # noqa: F401
  elif 'triton' in loaded:
    assert isinstance(sys.modules['triton'], types.ModuleType)
  else:
    assert 'triton' not in sys.modules
