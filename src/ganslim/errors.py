"""The one exception type for user mistakes."""


class GanslimError(Exception):
    """A mistake the user can fix (bad path, bad data, mismatched checkpoint, impossible budget).

    The message is one line that names the thing and the fix; the CLI prints it without a traceback.
    """
