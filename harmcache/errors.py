"""Errors a user can act on. The CLI prints their message on one line and exits with their code.

Every class here survives pickling with its fields intact: a decode worker or a Ray actor raises
them in another process, and an error that cannot be rebuilt in the parent would end the run.
"""


class HarmcacheError(Exception):
    """Base class for every error that should reach the user as a message, not a traceback."""

    exit_code = 1

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __reduce__(self):
        return (type(self), (self.message,))


class UsageError(HarmcacheError):
    """Nothing usable was given: no inputs, bad flags, an unwritable output."""

    exit_code = 2


class WeightsUnavailable(HarmcacheError):
    """Backbone weights are neither in --weights-dir nor in the library's own cache."""

    exit_code = 3


class CacheError(HarmcacheError):
    """The cache is missing, damaged, busy, read-only where a write is needed, or does not hold
    what was asked for."""

    exit_code = 4


class DataError(HarmcacheError):
    """Labels or features are unusable for training (no matches, one class, constant features)."""

    exit_code = 5


class VideoError(Exception):
    """A single video cannot be used. Recorded in the failure ledger; never stops a run."""

    def __init__(self, reason: str, message: str):
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message

    def __reduce__(self):
        return (type(self), (self.reason, self.message))
