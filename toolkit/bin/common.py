"""What every CLI shares: one-line errors instead of tracebacks, config loading with overrides."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable

from toolkit.audio import AudioError
from toolkit.config import ConfigError
from toolkit.optional import MissingDependencyError
from toolkit.registry import RegistryError


class UsageError(ValueError):
    """Bad command-line input detected before any heavy work."""


# Errors that describe bad input; anything else is a bug and keeps its traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (
    UsageError, ConfigError, RegistryError, AudioError, MissingDependencyError, FileNotFoundError,
)


def register_user_error(cls: type[BaseException]) -> type[BaseException]:
    """Let a component's own error type print as a one-line message."""
    global USER_ERRORS
    if cls not in USER_ERRORS:
        USER_ERRORS = USER_ERRORS + (cls,)
    return cls


def register_toolkit_errors() -> None:
    """Every error type of the toolkit that describes bad input prints as one line (toolkit.generation.errors)."""
    from toolkit.generation.errors import user_errors

    for cls in user_errors():
        register_user_error(cls)


def friendly_errors(prog: str) -> Callable[[Callable[..., int]], Callable[..., int]]:
    """Turn bad-input exceptions into `prog: error: message` and exit status 2, Ctrl-C into status 130."""

    def wrap(main: Callable[..., int]) -> Callable[..., int]:
        @functools.wraps(main)
        def run(*args, **kwargs) -> int:
            try:
                return main(*args, **kwargs)
            except USER_ERRORS as err:
                print(f"{prog}: error: {err}", file=sys.stderr)
                return 2
            except KeyboardInterrupt:  # Ctrl-C: one line, the shell's status for SIGINT (what was saved says so)
                print(f"{prog}: interrupted", file=sys.stderr)
                return 130

        return run

    return wrap
