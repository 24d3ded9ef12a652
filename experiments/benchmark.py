"""Speed: tiny-CNN step per conv formulation, every family's step against PyTorch, sRGB -> Lab
against scikit-image, input pipeline."""

import ml_collections

from colorjax import configs

VARIANTS = ('gpu',)


def get_config(variant=None):
  """CPU-sized by default (a few minutes on 2 cores); 'gpu' (under 9 minutes on one GPU:
  docs/performance.md has its budget): every family's step in float32 and bfloat16 against
  PyTorch (AMP bf16, channels_last, torch.compile) on the same GPU, at Zhang et al.'s batch
  and crop (the flower write-up's for flowers_resnet), and about 3 minutes of run.py's own
  loop training the full-width Zhang et al. network on the photos in $COLORJAX_BSDS300."""
  config = ml_collections.ConfigDict()
  config.program = 'benchmark'
  config.image = 'coffee'
  config.sizes = ('400x600', '100x150')  # HxW; 400x600 is the full coffee photo
  config.formulations = ('taps', 'nhwc')  # layers.Conv3x3: NCHW unrolled taps / XLA's NHWC
  config.channels = 6
  config.steps = 50                       # timed iterations, after one compiled warm-up call
                                          # (0 skips the tiny CNN)
  config.repeats = 3                      # best of
  # Input pipeline alone: SOURCE_SIZE:CROP cases, records stored as arrays, PNG or JPEG.
  config.pipeline_cases = ('96:64', '256:176')
  config.pipeline_formats = ('array', 'png', 'jpeg')
  config.pipeline_examples = 1024         # distinct source images (crops of bundled photos;
                                          # 0 skips the pipeline tables)
  config.pipeline_batch_size = 64
  config.pipeline_batches = 100           # timed batches, after 5 warm-up batches (the loop's
                                          # pipeline alone too)
  config.pipeline_tf = True               # the tf.data reference column (if tensorflow imports)
  config.resume_step = 2_000_000          # resume cost: first batch at this step vs step 0
  # Training step of each family (benchmark/family_steps.py) and its PyTorch equivalent
  # (benchmark/torch_reference.py).
  # FAMILY:BATCH at each of family_sizes, or FAMILY:BATCH:SIDE at its own side.
  config.families = ('unet:16', 'gan:16', 'zhang_softmax:8', 'zhang_regression:8',
                     'flowers_resnet:8')
  config.family_sizes = (64,)             # square sides, multiples of 16 (of 32: flowers_resnet)
  config.family_steps = 5                 # timed steps, after one warm-up step
  config.torch = True                     # the PyTorch column (if torch imports)
  config.torch_compile = False            # PyTorch's networks through torch.compile
  config.compute_dtypes = ('float32',)    # each family in each (precision.py; PyTorch: autocast)
  # run.py's training loop (programs/zhang.py, full width, softmax head) on loop_source, in
  # the last of compute_dtypes, at the batch and side of the first zhang_softmax case, for
  # about loop_seconds of training: its images/s against its step's alone. 0: no loop.
  config.loop_seconds = 0.0
  config.loop_source = 'samples'
  # Seconds from the program's start by which the run should end; the loop is shortened to
  # fit (0: no limit). Process start-up (imports, devices) comes before it.
  config.time_limit_s = 0.0
  # uint8 RGB -> Lab: color.lab_from_uint8 against skimage.color.rgb2lab; 0 skips.
  config.lab_batch = 64
  config.lab_side = 256
  # MFU's peak TFLOP/s per device; 0: the dense bf16 peak of a known device
  # (throughput.PEAK_TFLOPS: H100/H200 989, A100 312), none on CPU ('-').
  config.peak_tflops = 0.0
  if variant == 'gpu':
    # The families and the loop only, for the time budget: no tiny CNN, sRGB -> Lab or
    # pipeline tables (the loop measures its own pipeline).
    config.steps = 0
    config.pipeline_examples = 0
    config.lab_batch = 0
    config.families = ('unet:32', 'gan:64', 'zhang_softmax:40', 'zhang_regression:40',
                       'flowers_resnet:32:224')
    config.family_sizes = (176,)          # Zhang et al.'s crop (and batch 40)
    config.family_steps = 20
    config.repeats = 2                    # GPU windows vary little; compiles take the time
    config.torch_compile = True
    config.compute_dtypes = ('float32', 'bfloat16')
    config.pipeline_batches = 50
    config.loop_seconds = 180.0
    config.loop_source = f'folder:${configs.PHOTOS_VARIABLE}'
    config.time_limit_s = 480.0           # + start-up and margin: under 9 minutes
  return config
