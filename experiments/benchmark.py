"""Speed: tiny-CNN step per conv formulation, every family's step against PyTorch, sRGB -> Lab
against scikit-image, input pipeline."""

import ml_collections


def get_config():
  config = ml_collections.ConfigDict()
  config.program = 'benchmark'
  config.image = 'coffee'
  config.sizes = ('400x600', '100x150')  # HxW; 400x600 is the full coffee photo
  config.formulations = ('taps', 'nhwc')  # layers.Conv3x3: NCHW unrolled taps / XLA's NHWC
  config.channels = 6
  config.steps = 50                       # timed iterations, after one compiled warm-up call
  config.repeats = 3                      # best of
  # Input pipeline alone: SOURCE_SIZE:CROP cases, records stored as arrays, PNG or JPEG.
  config.pipeline_cases = ('96:64', '256:176')
  config.pipeline_formats = ('array', 'png', 'jpeg')
  config.pipeline_examples = 1024         # distinct source images (crops of bundled photos)
  config.pipeline_batch_size = 64
  config.pipeline_batches = 100           # timed batches, after 5 warm-up batches
  config.pipeline_tf = True               # the tf.data reference column (if tensorflow imports)
  config.resume_step = 2_000_000          # resume cost: first batch at this step vs step 0
  # Training step of each family (benchmark/family_steps.py) and its PyTorch equivalent
  # (benchmark/torch_reference.py).
  config.families = ('unet:16', 'gan:16', 'zhang_softmax:8', 'zhang_regression:8')  # FAMILY:BATCH
  config.family_sizes = (64,)             # square sides, multiples of 16
  config.family_steps = 5                 # timed steps, after one warm-up step
  config.torch = True                     # the PyTorch column (if torch imports)
  config.compute_dtype = 'float32'        # colorjax's steps (precision.py); PyTorch's: float32
  # uint8 RGB -> Lab: color.lab_from_uint8 against skimage.color.rgb2lab; 0 skips.
  config.lab_batch = 64
  config.lab_side = 256
  # MFU's peak TFLOP/s per device; 0: the dense bf16 peak of a known device
  # (throughput.PEAK_TFLOPS: H100/H200 989, A100 312), none on CPU ('-').
  config.peak_tflops = 0.0
  return config
