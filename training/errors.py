"""The one exception type the command-line tools turn into a one-line error."""


class TrainingError(Exception):
    """A user-facing failure: the message names the problem; no traceback is shown."""


def one_line(message: object) -> str:
    """Collapse a message (MLflow's often carry JSON or several lines) onto one line."""
    return " ".join(str(message).split())
