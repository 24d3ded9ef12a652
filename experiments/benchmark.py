"""Speed: tiny-CNN step per conv formulation, every family's step against PyTorch, sRGB -> Lab
against scikit-image, input pipeline."""

import ml_collections

from colorjax import configs

VARIANTS = ('gpu',)


def get_config(variant=None):
  """CPU-sized by default (a few minutes on 2 cores); 'gpu': the families at the papers'
  crops and batches in float32 and bfloat16 against PyTorch (AMP bf16, channels_last,
  torch.compile) on the same GPU, and about 3 minutes of run.py's own loop training the
  full-width Zhang et al. network on the photos in $COLORJAX_BSDS300."""
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
  config.torch_compile = False            # PyTorch's networks through torch.compile
  config.compute_dtypes = ('float32',)    # each family in each (precision.py; PyTorch: autocast)
  # run.py's training loop (programs/zhang.py, full width, softmax head) for loop_steps steps
  # on loop_source, in the last of compute_dtypes, at the batch and the first of family_sizes
  # of the zhang_softmax entry: its images/s against its step's alone. 0 steps: no loop.
  config.loop_steps = 0
  config.loop_source = 'samples'
  # uint8 RGB -> Lab: color.lab_from_uint8 against skimage.color.rgb2lab; 0 skips.
  config.lab_batch = 64
  config.lab_side = 256
  # MFU's peak TFLOP/s per device; 0: the dense bf16 peak of a known device
  # (throughput.PEAK_TFLOPS: H100/H200 989, A100 312), none on CPU ('-').
  config.peak_tflops = 0.0
  if variant == 'gpu':
    config.sizes = ('400x600',)
    config.families = ('unet:32', 'gan:64', 'zhang_softmax:40', 'zhang_regression:40')
    config.family_sizes = (176,)          # Zhang et al.'s crop (and batch 40)
    config.family_steps = 20
    config.torch_compile = True
    config.compute_dtypes = ('float32', 'bfloat16')
    config.loop_steps = 3000
    config.loop_source = f'folder:${configs.PHOTOS_VARIABLE}'
  return config
