"""TensorBoard event files under <workdir>/tensorboard, written by process 0 with tensorboardX:
pure Python and protobuf, so TensorFlow is never imported (clu's writer goes through
tf.summary); without tensorboardX nothing is written. A resumed run purges what the killed one
wrote past its checkpoint."""

import pathlib
import sys

import numpy as np

from colorjax import distributed, optional

FOLDER = 'tensorboard'


def _tensorboardx():
  """tensorboardX, or None where it is not installed (one line says so). It imports torch when
  torch is installed (to accept its tensors): 3 s and hundreds of MB at every start that
  colorjax never uses, so torch is hidden while tensorboardX loads, unless something imported
  it already."""
  hidden = 'torch' not in sys.modules
  if hidden:
    sys.modules['torch'] = None  # `import torch` raises ImportError
  try:
    return optional.load('tensorboardX', 'no TensorBoard event files', 'tensorboardX')
  finally:
    if hidden:
      del sys.modules['torch']


class Writer:
  """Scalars and image grids; a no-op outside process 0."""

  def __init__(self, workdir, start_step: int):
    self.writer = None
    tensorboardx = _tensorboardx() if distributed.is_main() else None
    if tensorboardx is not None:
      # purge_step: TensorBoard drops events at or past it written by an earlier, killed run.
      self.writer = tensorboardx.SummaryWriter(str(pathlib.Path(workdir) / FOLDER),
                                               purge_step=start_step or None)

  def scalars(self, rows, prefix: str):
    """Every number of each metrics row ({'step': k, name: value}) as `prefix/name` at step
    k; a vector (one value per run of the ablation) as its mean."""
    if self.writer is None:
      return
    for row in rows:
      for name, value in row.items():
        if name != 'step':
          self.writer.add_scalar(f'{prefix}/{name}', float(np.mean(value)), row['step'])

  def image(self, tag: str, image, step: int):
    """An (H, W, 3) image in [0, 1]."""
    if self.writer is not None:
      self.writer.add_image(tag, np.clip(image, 0.0, 1.0), step, dataformats='HWC')

  def close(self):
    if self.writer is not None:
      self.writer.close()
