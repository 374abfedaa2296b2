"""Exceptions shared by the engine's long-running functions and the readers of stored results."""


class Cancelled(RuntimeError):
    """Raised when a caller's ``cancel.is_set()`` became true: the work stopped cleanly, nothing was written."""


class DamagedResult(ValueError):
    """A stored result that cannot be trusted: a file is missing, unreadable, or fails its checksum.

    Readers raise it instead of serving the bytes; pages offer to recompute. ``path`` names what is wrong.
    """

    def __init__(self, message: str, path: str | None = None):
        super().__init__(message)
        self.path = path
