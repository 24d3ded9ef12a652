"""The one exception type for a user's mistake: run.py prints it as one line, exit status 2."""

import argparse


class UsageError(ValueError):
  """A mistake the user can fix: the message names the problem and the fix. A ValueError, so
  that colorjax.load's argument mistakes are all TypeErrors or ValueErrors, as documented."""


class ArgumentParser(argparse.ArgumentParser):
  """argparse whose mistakes are UsageErrors: one line with the usage, not a printed help."""

  def error(self, message):
    raise UsageError(f"{message}; {' '.join(self.format_usage().split())}")
