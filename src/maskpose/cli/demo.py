"""CLI verbs for the demo area (registered on the shared Typer app)."""

from ._app import app, bench_app, body_app, data_app, masks_app  # noqa: F401
