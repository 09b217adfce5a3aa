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


class UsageError(HarmcacheError, ValueError):
    """Nothing usable was given: no inputs, bad settings, an unwritable output. A `ValueError`,
    as scikit-learn raises for a bad parameter, so code that catches one catches this.

    `parameter` names the setting at fault in the library's words (`epochs`); the message may
    hold `{param}` where that name goes, and the CLI puts the flag there instead (`--epochs`)."""

    exit_code = 2

    def __init__(self, message: str, parameter: str | None = None):
        self.template = message
        self.parameter = parameter
        super().__init__(self.worded(parameter))

    def worded(self, name: str | None) -> str:
        """The message with the setting called `name`."""
        if self.parameter is None:
            return self.template
        return self.template.replace("{param}", name or self.parameter)

    def as_flag(self) -> str:
        """The message as the CLI says it: `epochs` becomes `--epochs`."""
        if self.parameter is None:
            return self.message
        return self.worded("--" + self.parameter.replace("_", "-"))

    def __reduce__(self):
        return (type(self), (self.template, self.parameter))


class WeightsUnavailable(HarmcacheError):
    """Backbone weights are neither in --weights-dir nor in the library's own cache."""

    exit_code = 3


class CacheError(HarmcacheError):
    """The cache is missing, damaged, busy, read-only where a write is needed, or does not hold
    what was asked for."""

    exit_code = 4


class DataError(HarmcacheError, ValueError):
    """Labels or features are unusable for training (no matches, one class, constant features,
    non-finite values). A `ValueError`, as scikit-learn raises for unusable data."""

    exit_code = 5


class VideoError(Exception):
    """A single video cannot be used. Recorded in the failure ledger; never stops a run."""

    def __init__(self, reason: str, message: str):
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message

    def __reduce__(self):
        return (type(self), (self.reason, self.message))
