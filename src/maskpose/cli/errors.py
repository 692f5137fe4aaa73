"""Turn the library's input errors into one clear line on stderr instead of a traceback."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import typer

from maskpose.errors import MaskposeError


def friendly(func: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator for CLI commands: bad-input errors (``MaskposeError``; ``OSError`` such as a missing
    file) become ``error: …`` and exit code 2. Anything else is a bug and keeps its traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (MaskposeError, OSError) as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(code=2) from None

    return wrapper
