"""Monitoring commands: drift, feedback (true labels), live quality, pruning the log."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from modelport.cli._shared import err, open_registry, out

DRIFT_FOUND = 8
"""``modelport drift``'s exit code when a feature drifts: not one of the errors' codes."""


def drift(
    ref: Annotated[str, typer.Argument(help="NAME, NAME/3 or NAME@ALIAS.")],
    since: Annotated[str, typer.Option(help="Window of logged requests: 30m, 1h, 7d, ...")] = "1h",
    alpha: Annotated[float, typer.Option(help="A feature drifts when p < alpha ...")] = 0.01,
    psi: Annotated[float, typer.Option(help="... and PSI > this.")] = 0.1,
    min_samples: Annotated[int, typer.Option(help="Fewer logged rows: no verdict.")] = 100,
    served_name: Annotated[
        str | None, typer.Option(help="Name the model is served under, if renamed.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Per-feature drift of the logged inputs against the training data's profile.

    Compares the inputs the server logged in the window with the version's reference
    profile (PSI, with KS or chi-squared). Exit 8 when a feature drifts (0 when none does
    or there is no verdict yet; 3 is an unknown model, as everywhere).
    """
    from modelport.monitoring.drift import DriftThresholds
    from modelport.monitoring.live import drift_of, parse_window

    thresholds = DriftThresholds(alpha=alpha, psi=psi, min_samples=min_samples)
    with open_registry() as reg:
        report = drift_of(reg, ref, parse_window(since), thresholds, served_name)
    if as_json:
        out.print_json(data=report)
    else:
        head = f"{report['model']} version {report['version']}: {report['n_live']} rows logged"
        out.print(f"{head} in the last {since}", markup=False)
        if "reason" in report:
            out.print(f"no verdict: {report['reason']}", markup=False)
        table = Table("feature", "kind", "test", "PSI", "p-value", "drifted")
        for f in report["features"]:
            table.add_row(
                f["feature"],
                f["kind"],
                f["test"],
                _num(f["psi"]),
                _num(f["p_value"]),
                "DRIFT" if f["drifted"] else "-",
            )
        if report["features"]:
            out.print(table)
    if report["drifted"]:
        raise typer.Exit(DRIFT_FOUND)


def feedback(
    name: Annotated[str, typer.Argument(help="The served model's name.")],
    labels: Annotated[Path, typer.Argument(help="CSV file with a request id and a label column.")],
    id_column: Annotated[str, typer.Option(help="Column holding the request ids.")] = "id",
    label_column: Annotated[str, typer.Option(help="Column holding the true labels.")] = "label",
) -> None:
    """Record true labels for logged requests, for live accuracy.

    A label is one value for a request of one row, or a JSON list with one value per row, in
    row order, for a request of several: "[2, 1, 1]". Labels of the wrong kind for what NAME
    predicts (text for a model of numbers, say), or whose count is not the request's rows,
    are refused; labels of ids never logged for NAME are unpaired. Neither is stored; the
    others are. Exit code: 0 all stored, 2 some refused, 3 none refused but some unpaired.
    """
    from modelport.monitoring.labels import store_feedback

    with open_registry() as reg:
        report = store_feedback(reg, name, labels, id_column, label_column)
    refused, unpaired = report.refused, report.unpaired
    out.print(
        f"stored {report.stored} labels for {name}, refused {len(refused)}, unpaired "
        f"{len(unpaired)}",
        markup=False,
    )
    for reason in refused[:5]:
        err.print(f"error: refused {reason}", markup=False)
    if len(refused) > 5:
        err.print(f"error: refused {len(refused) - 5} more", markup=False)
    if unpaired:
        shown = ", ".join(unpaired[:10]) + (" ..." if len(unpaired) > 10 else "")
        err.print(f"error: {len(unpaired)} ids were never logged for {name}: {shown}", markup=False)
    if refused or unpaired:
        raise typer.Exit(2 if refused else 3)


def prune_log(
    name: Annotated[str | None, typer.Argument(help="Model name \\[default: all].")] = None,
    older_than: Annotated[
        str, typer.Option(help="Keep this much of the log: 30d, 2w, 12h, ...")
    ] = "30d",
) -> None:
    """Delete logged predictions older than --older-than, and the labels posted for them.

    Drift and live quality read only recent windows, so older entries are dead weight in the
    registry database. Run it from cron, e.g. nightly with the default 30 days.
    """
    from modelport.monitoring.live import parse_window

    cutoff = datetime.now(UTC) - parse_window(older_than)
    with open_registry() as reg:
        entries, labels = reg.predictions.prune_predictions(cutoff, name)
    scope = name or "all models"
    out.print(
        f"removed {entries} logged predictions and {labels} labels of {scope} older than "
        f"{older_than} (before {cutoff:%Y-%m-%d %H:%M} UTC)",
        markup=False,
    )


def quality(
    name: Annotated[str, typer.Argument(help="The served model's name.")],
    since: Annotated[str, typer.Option(help="Window: 30m, 1h, 7d, ...")] = "1d",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Live accuracy, F1, AUC (classifiers) or MAE, RMSE (regressors) per version.

    Computed from logged predictions and the labels posted for them."""
    from modelport.monitoring.live import parse_window, quality_summary

    with open_registry() as reg:
        report = quality_summary(reg.predictions, name, parse_window(since))
    if as_json:
        out.print_json(data=report)
        return
    if not report["n_labelled"]:
        out.print(f"no labelled predictions of {name} in the last {since}", markup=False)
        return
    columns = [k for k in next(iter(report["versions"].values())) if k != "n"]
    table = Table("version", "labelled", *columns)
    for version, scores in report["versions"].items():
        table.add_row(version, str(scores["n"]), *(_num(scores[c]) for c in columns))
    out.print(table)


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"
