"""Command-line interface: ``maskpose --help`` lists the verbs.

Each area registers its verbs in its own module; this file only imports them.
"""

from ._app import app
from . import benchmarks, body, data, demo, learn, masks, render, topology, video  # noqa: F401  (register commands)


def main() -> None:
    app()


__all__ = ["app", "main"]
