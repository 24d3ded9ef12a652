"""Run an experiment: python run.py --experiment=NAME[:VARIANT] [--config.key=value ...].

`python run.py --help` lists the experiments and options; `python run.py colorize --help`
colorizes image files with a trained run. The same as the `colorjax` command
(colorjax/cli/main.py).
"""

from colorjax.cli import main

if __name__ == '__main__':
  main.run()
