"""One exception type for user mistakes.

The CLI catches `LabError` and prints its message on one line with a non-zero
exit, so bad input never shows a raw traceback. Code raises it wherever the
cause is something the user can fix (a path, a name, a setting).
"""


class LabError(Exception):
    """A problem the user can fix; its message says what and how."""
