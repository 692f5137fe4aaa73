"""Command-line interface: ``maskpose --help`` lists the verbs.

Each area registers its verbs in its own module; this file only imports them.
"""

from . import benchmarks, body, data, demo, learn, masks, render, scene, topology, video  # noqa: F401  (register commands)
from ._app import app


def main() -> None:
    app()


__all__ = ["app", "main"]
