"""Exceptions shared by the engine's long-running functions."""


class Cancelled(RuntimeError):
    """Raised when a caller's ``cancel.is_set()`` became true: the work stopped cleanly, nothing was written."""
