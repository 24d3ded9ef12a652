"""Lab normalization ablation: tiny CNN on one photo, 5 schemes x 5 seeds, report and figures."""

import ml_collections

from colorjax import configs


def get_config():
  config = ml_collections.ConfigDict()
  config.program = 'norm_ablation'
  config.image = 'coffee'       # a bundled scikit-image photo, or a path to any image file
  config.image_scale = 0.25     # 400x600 -> 100x150 keeps the default under 3 minutes on 2 CPU
                                # cores; 1.0 is the full photo as in the write-up
  config.schemes = ('none', 'unit', 'centered', 'pix2pix', 'shifted')
  config.seeds = (0, 1, 2, 3, 4)
  config.channels = 6
  config.compute_dtype = 'float32'  # float32 | bfloat16: mixed precision (colorjax/precision.py)
  config.optimizer = configs.optimizer('adam', 1e-3)
  config.update(configs.loop_fields(  # steps_per_call: iterations per compiled lax.scan call
      evaluates=False, num_steps=2000, steps_per_call=100, checkpoint_every=500))
  return config
