"""The benchmark (experiments/benchmark.py): every family's training step against the same
step in PyTorch, the tiny CNN's conv formulations, sRGB -> Lab against scikit-image, and the
input pipeline. Apart from the library: nothing in colorjax imports it, and torch is
imported here only, when the PyTorch column is asked for.
"""
