"""The Typer application objects; each ``maskpose.cli.<area>`` module registers its verbs here.

Heavy imports (torch, anny) happen inside the command functions so that ``maskpose --help``
stays fast.
"""

import typer

from maskpose.allocator import retain_freed_memory

app = typer.Typer(
    name="maskpose",
    help="3D human pose and mesh from one RGB image, self-adapted to new domains with masks only.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
body_app = typer.Typer(help="Body model: render posed bodies from the pose sources.", no_args_is_help=True)
data_app = typer.Typer(help="Datasets: inspect and summarise.", no_args_is_help=True)
masks_app = typer.Typer(help="Masks from real video (background subtraction).", no_args_is_help=True)
bench_app = typer.Typer(help="Benchmarks, printed as ratios against a reference measured in the same run.",
                        no_args_is_help=True)


@app.callback()
def _process_settings() -> None:
    """Process-wide settings, applied before every verb (the app's help is ``app``'s own)."""
    # Every verb trains, renders or synthesises in steps that free and reallocate the same large
    # buffers: keep them in the process instead of faulting fresh pages each step (about 15 % of
    # a CPU training step, docs/performance.md section 7). Standard library only: no start-up cost.
    retain_freed_memory()


app.add_typer(body_app, name="body")
app.add_typer(data_app, name="data")
app.add_typer(masks_app, name="masks")
app.add_typer(bench_app, name="bench")
