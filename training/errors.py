"""The one exception type the command-line tools turn into a one-line error."""


class TrainingError(Exception):
    """A user-facing failure: the message names the problem; no traceback is shown."""
