"""Errors meant for people: one line, an exit code, the closest alternatives."""

from __future__ import annotations

# Exit codes are part of the command-line contract (README, SKILL.md).
EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2  # bad argument or bad config file
EXIT_NO_MODEL = 3  # no model in the source matches --model-name
EXIT_SOURCE = 4  # SGLang source missing, not SGLang, clone and fallback failed
EXIT_MODEL_SOURCE = 5  # the model's own file cannot be analysed (syntax error, ...)
EXIT_OUTPUT = 6  # output folder unusable
EXIT_INTERRUPTED = 130


class UserError(Exception):
    """An error caused by the input, reported as one line without a traceback."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class UsageError(UserError):
    exit_code = EXIT_USAGE


class ConfigError(UserError):
    exit_code = EXIT_USAGE


class ModelNotFound(UserError):
    exit_code = EXIT_NO_MODEL


class SourceError(UserError):
    exit_code = EXIT_SOURCE


class ModelSourceError(UserError):
    exit_code = EXIT_MODEL_SOURCE


class OutputError(UserError):
    exit_code = EXIT_OUTPUT
