"""User-facing errors.

Every mistake a user can make (an unknown task, a bad recipe field, a missing optional dependency, an unreadable
checkpoint, a tracking server that does not answer) raises a :class:`UserError` whose message is one line saying
what was wrong and what would be right. The recipes catch it, print ``error: <message>`` to stderr and exit with
status 2, without a traceback and before anything is written.
"""

from __future__ import annotations


class UserError(Exception):
    """A mistake in what the user asked for; the message is a single line."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        assert "\n" not in message, "UserError messages are one line"
        super().__init__(message)


class UnknownTaskError(UserError):
    """The task name matches no registered suite or task."""


class MissingDependencyError(UserError):
    """An optional dependency is not installed; the message names the extra to install."""

    @classmethod
    def for_extra(cls, module: str, extra: str) -> "MissingDependencyError":
        return cls(f"the '{module}' package is required; install it with: pip install -e '.[{extra}]'")
