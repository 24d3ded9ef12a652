"""The one exception type for a user's mistake: run.py prints it as one line, exit status 2."""


class UsageError(Exception):
  """A mistake the user can fix: the message names the problem and the fix."""
