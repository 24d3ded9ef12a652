"""colorjax: automatic image colorization in JAX/Flax.

For notebooks:

  import colorjax
  c = colorjax.load('runs/zhang_softmax')   # any trained run; network= where it holds several
  rgb = c(image)                            # uint8 HxWx3 or HxW -> uint8 HxWx3, as colorize writes
  ab = c.predict_ab(L)                      # float (N, H, W) in [0, 100] -> ab (N, h, w, 2)

`import colorjax` is light (no JAX until load is called) and changes nothing in the process.
"""


def load(workdir, network=None, temperature=None, samples=None, seed=0, size=None,
         pipeline='default'):
  """A trained run as an inference.Colorizer (see colorjax/inference.py's load)."""
  from colorjax import inference
  return inference.load(workdir, network, temperature, samples, seed, size, pipeline)


__all__ = ['load']
