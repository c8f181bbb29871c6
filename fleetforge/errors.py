"""User-facing errors: one line, a non-zero exit code, never a traceback."""
from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import TypeVar

F = TypeVar("F", bound=Callable[..., object])


class UserError(Exception):
    """A problem with the user's input, files or machine (not a bug in FleetForge).

    `where` names the file (and line) or host the problem is about, so the message can be read
    without context: ``layers/core/minimal/buildroot/base.conf:3: expected BR2_NAME=value``.
    """

    exit_code = 2

    def __init__(self, message: str, *, where: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.where = where

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message


def exit_on_user_error(func: F) -> F:
    """Turn a UserError raised by `func` into `error: <message>` on stderr and exit code 2.

    Used by every command-line entry point (invoke tasks and `python -m` mains) so a user never
    sees a traceback for a mistake of theirs.
    """

    @functools.wraps(func)
    def wrapper(*args: object, **kwargs: object) -> object:
        try:
            return func(*args, **kwargs)
        except UserError as error:
            print(f"error: {error}", file=sys.stderr)
            raise SystemExit(error.exit_code) from None
        except KeyboardInterrupt:
            print("error: interrupted", file=sys.stderr)
            raise SystemExit(130) from None

    return wrapper  # type: ignore[return-value]
