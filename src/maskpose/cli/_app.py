"""The Typer application objects; each ``maskpose.cli.<area>`` module registers its verbs here.

Heavy imports (torch, anny) happen inside the command functions so that ``maskpose --help``
stays fast.
"""

import typer

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

app.add_typer(body_app, name="body")
app.add_typer(data_app, name="data")
app.add_typer(masks_app, name="masks")
app.add_typer(bench_app, name="bench")
