"""Converting a version to ONNX, and exporting an ONNX version as an edge bundle."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from modelport.cli._shared import open_registry, out
from modelport.convert import DEFAULT_ATOL, DEFAULT_RTOL
from modelport.convert import convert as convert_version
from modelport.edge import export_edge
from modelport.records import read_input_file


def convert(
    ref: Annotated[str, typer.Argument(help="NAME, NAME/3 or NAME@ALIAS: the version to convert.")],
    to: Annotated[str, typer.Option("--to", help="The format to convert to: onnx.")],
    rtol: Annotated[
        float, typer.Option(help="Relative tolerance of floating-point outputs.")
    ] = DEFAULT_RTOL,
    atol: Annotated[
        float, typer.Option(help="Absolute tolerance of floating-point outputs.")
    ] = DEFAULT_ATOL,
    data: Annotated[
        Path | None,
        typer.Option(help="More rows to check on (.json, .jsonl or .csv), e.g. a test set."),
    ] = None,
    float16_weights: Annotated[
        bool,
        typer.Option(
            "--float16-weights",
            help="Round the weights to half precision (as a float16 runtime computes); the "
            "check then says whether the model survives it.",
        ),
    ] = False,
) -> None:
    """Convert a version to ONNX and register the graph as a new version of the same model.

    The original and the graph both run on the version's input example, on rows drawn from
    its reference profile (each feature from its recorded quantiles) and on the --data rows.
    Labels must match exactly and other outputs within atol + rtol * |original|; otherwise
    nothing is registered and the worst row is shown. The new version keeps the original's
    input names and dtypes and its output names, and records the parent, the converter and
    the measured differences in its lineage (modelport info NAME/N).
    """
    rows = read_input_file(data) if data is not None else None
    with open_registry() as reg:
        done = convert_version(
            reg,
            ref,
            to=to,
            rtol=rtol,
            atol=atol,
            data=rows,
            weights="float16" if float16_weights else None,
        )
    counts = ", ".join(f"{source} {n}" for source, n in done.rows.items())
    new = f"{done.version.name}/{done.version.version}"
    out.print(f"registered {new} (onnx, from {done.parent} by {done.converter})", markup=False)
    out.print(
        f"checked {done.rows_checked} rows ({counts}): max abs diff {done.max_abs_diff:.3g}, "
        f"max rel diff {done.max_rel_diff:.3g} (rtol {done.rtol:g}, atol {done.atol:g})",
        markup=False,
    )


def export(
    ref: Annotated[str, typer.Argument(help="NAME, NAME/3, NAME@ALIAS or a path (ONNX).")],
    edge: Annotated[
        Path,
        typer.Option(help="New (or empty) folder for the edge bundle.", metavar="DIR"),
    ],
) -> None:
    """Write an ONNX version as a folder that runs without modelport (numpy + onnxruntime).

    The folder holds model.onnx, signature.json, predict.py, README.txt and SHA256SUMS;
    predict.py checks the checksums and the inputs, then prints the outputs as JSON. Other
    flavors: run `modelport convert REF --to onnx` first.
    """
    with open_registry() as reg:
        bundle = export_edge(reg, ref, edge)
    which = f"{bundle.name}/{bundle.version}" if bundle.version is not None else bundle.name
    out.print(f"wrote {bundle.path} ({which}): {', '.join(bundle.files)}, SHA256SUMS", markup=False)
    out.print(f"run: python {bundle.path / 'predict.py'} ROWS.json", markup=False)
