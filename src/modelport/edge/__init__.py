"""Edge bundles: a folder that runs an ONNX version with numpy and onnxruntime only.

Layout of the folder :func:`export_edge` writes::

    model.onnx       the version's graph, byte for byte
    signature.json   {"model", "version", "kind", "inputs", "outputs"}: names, dtypes and
                     shapes (-1 for any size) of what the graph takes and returns
    predict.py       reads rows (JSON, or .npy for one input), checks the checksums and the
                     inputs against signature.json, prints the outputs as JSON
    README.txt       how to run it
    SHA256SUMS       the SHA-256 of every other file, in ``sha256sum`` format

The folder is built beside its final place and renamed there: it is complete or absent.
``predict.py`` is the package resource ``predict.py.txt`` (kept as text so nothing imports it).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import numpy as np

from modelport.artifact.checksums import sha256_file
from modelport.artifact.staging import staging_dir
from modelport.errors import ArtifactCorrupted, Conflict, InvalidInput
from modelport.ref import ModelRef
from modelport.registry import Registry

__all__ = ["EdgeBundle", "export_edge"]

CHECKSUMS = "SHA256SUMS"
_README = """\
{name}{version}: an ONNX model that runs without modelport.

Needs Python 3 with numpy and onnxruntime:
    pip install numpy onnxruntime{ort_pin}

Run it on rows in a JSON file (a list of records, or nested lists for one input), on a .npy
array, or on JSON from stdin:
    python predict.py rows.json
    echo '{example}' | python predict.py -

It checks every file against SHA256SUMS (refusing a changed bundle, exit 3) and the rows
against signature.json (exit 2), then prints the outputs as JSON: {outputs}.
"""


@dataclass(frozen=True)
class EdgeBundle:
    """A written edge bundle."""

    path: Path
    name: str
    version: int | None
    files: dict[str, str]
    """{file name: sha256 hex}, as SHA256SUMS lists them."""


def export_edge(registry: Registry, ref: str | Path | ModelRef, target: str | Path) -> EdgeBundle:
    """Write the ONNX version ``ref`` as an edge bundle in the new (or empty) folder ``target``.

    Raises InvalidInput for a version of another flavor (convert it first), and Conflict
    when ``target`` exists and is not an empty folder.
    """
    folder = Path(target)
    _require_free(folder)
    loaded = registry.load(ref)
    manifest = loaded.manifest
    if manifest.flavor != "onnx":
        raise InvalidInput(
            f"{_label(loaded.name, loaded.version)} is a {manifest.flavor} model and an edge "
            f"bundle runs ONNX only: run `modelport convert {ref} --to onnx` first, then "
            "export the version it registers"
        )
    rel = str(manifest.flavor_options.get("file", "model.onnx"))
    source = loaded.path / rel
    signature = {"model": loaded.name, "version": loaded.version, **manifest.signature.to_dict()}
    example = _example_row(loaded.input_example(), manifest.signature.input_names)
    readme = _README.format(
        name=loaded.name,
        version=f" version {loaded.version}" if loaded.version is not None else "",
        ort_pin=_ort_pin(manifest.requirements),
        example=example,
        outputs=", ".join(s.name for s in manifest.signature.outputs) or "the graph's outputs",
    )
    if folder.is_dir():
        folder.rmdir()  # empty, checked above: the bundle takes its place
    with staging_dir(folder) as tmp:
        shutil.copyfile(source, tmp / "model.onnx")
        if sha256_file(tmp / "model.onnx") != manifest.files.get(rel):
            raise ArtifactCorrupted(rel, "changed since the version was loaded")
        (tmp / "signature.json").write_text(json.dumps(signature, indent=2) + "\n", "utf-8")
        template = files("modelport.edge").joinpath("predict.py.txt").read_text("utf-8")
        (tmp / "predict.py").write_text(template, "utf-8")
        (tmp / "README.txt").write_text(readme, "utf-8")
        digests = {
            name: sha256_file(tmp / name)
            for name in ("model.onnx", "signature.json", "predict.py", "README.txt")
        }
        lines = "".join(f"{digest}  {name}\n" for name, digest in digests.items())
        (tmp / CHECKSUMS).write_text(lines, "utf-8")
    return EdgeBundle(folder, loaded.name, loaded.version, digests)


def _require_free(folder: Path) -> None:
    if folder.is_dir() and not any(folder.iterdir()):
        return
    if folder.exists() or folder.is_symlink():
        raise Conflict(f"{folder} exists and is not an empty folder; choose a new folder")


def _label(name: str, version: int | None) -> str:
    return f"{name}/{version}" if version is not None else repr(name)


def _ort_pin(requirements: list[str]) -> str:
    pins = [r.partition("==")[2] for r in requirements if r.startswith("onnxruntime==")]
    return f"=={pins[0]}" if pins else ""


def _example_row(example: Mapping[str, np.ndarray] | None, names: list[str]) -> str:
    """One row of the input example as predict.py takes it (JSON), for the README."""
    if not example:
        return "[...]"
    first = {name: _first(example[name]) for name in names}
    return json.dumps([first] if len(names) > 1 else [first[names[0]]])


def _first(values: np.ndarray) -> object:
    row = values[0]
    return row.tolist() if isinstance(row, np.ndarray | np.generic) else row
