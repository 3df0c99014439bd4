"""For every global the allow-list admits, files crafted to make it run code on restore run none.

Each allowed class is restored from hand-written pickles in every way pickle can reach it
(``NEWOBJ`` + ``BUILD`` with a state dict, ``BUILD`` with slot state, which goes through
``setattr``, and ``REDUCE``, which calls the class with arguments), each allowed function is
called with crafted arguments, and each class is rebuilt from a crafted skops file. Every
string in the crafted state is Python code that would create a marker file if it were
executed, or the marker's path (for anything that would write where its state says). Loading
may fail (the state is nonsense), but the marker must never appear, through the plain-pickle
loader, the joblib loader (which also reads ``.pkl`` files given to ``modelport register``) and
the skops loader.

The scipy distribution objects that broke the old package-wide rule are the control: the same
crafting run on them with the guard bypassed does create the marker.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import pickle
import re
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modelport.artifact.signature import Signature, TensorSpec
from modelport.errors import FlavorError, UnsafeArtifact
from modelport.flavors import _pickle_guard
from modelport.flavors import sklearn as sklearn_flavor

from .test_pickle_allowlist import _resolve, allowed_globals

SIGNATURE = Signature("tensors", (TensorSpec("input", "float64", (-1, 4)),))

# Attribute names that code-running classes are known to read from their state.
KNOWN_DANGEROUS = ("_parse_arg_template", "_ctor_param", "func", "path", "filename", "file")


def _code(marker: Path) -> str:
    return f"open({str(marker)!r}, 'w').close()"


def _body(value: object) -> bytes:
    """``value`` pickled (protocol 2) without its PROTO header and STOP, to embed."""
    data = pickle.dumps(value, protocol=2)
    assert data[:2] == b"\x80\x02"
    assert data[-1:] == b"."
    return data[2:-1]


def _global(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def newobj_build(module: str, name: str, state: object) -> bytes:
    """``cls.__new__(cls)``, then ``BUILD`` with ``state``."""
    return b"\x80\x02" + _global(module, name) + b")\x81" + _body(state) + b"b."


def reduce_call(module: str, name: str, args: tuple[object, ...]) -> bytes:
    """``obj(*args)`` for the global ``module.name``."""
    return b"\x80\x02" + _global(module, name) + _body(args) + b"R."


def _state_keys(cls: type) -> list[str]:
    """Names worth poisoning: constructor parameters, attributes the class's restore code
    reads, slots, and the names code-running classes are known to read."""
    keys: set[str] = set(KNOWN_DANGEROUS)
    with contextlib.suppress(TypeError, ValueError):
        keys.update(inspect.signature(cls).parameters)
    for owner in cls.__mro__:
        keys.update(getattr(owner, "__slots__", ()) or ())
        for hook in ("__setstate__", "__init__", "__new__"):
            function = owner.__dict__.get(hook)
            try:
                source = inspect.getsource(function)  # type: ignore[arg-type]
            except (OSError, TypeError):
                continue
            keys.update(re.findall(r"self\.(\w+)", source))
            keys.update(re.findall(r"state\[['\"](\w+)['\"]\]", source))
    keys.discard("self")
    return sorted(k for k in keys if isinstance(k, str) and k.isidentifier())


def _positional(cls: type) -> int:
    try:
        parameters = inspect.signature(cls).parameters.values()
    except (TypeError, ValueError):
        return 1
    return max(1, sum(p.kind is p.POSITIONAL_OR_KEYWORD for p in parameters))


def crafted_pickles(module: str, name: str, marker: Path) -> Iterator[tuple[str, bytes]]:
    """``(how, bytes)`` for each way a pickle can make ``module.name`` run code."""
    code, path = _code(marker), str(marker)
    obj = _resolve(module, name)
    if not isinstance(obj, type):
        for value in (code, path):
            yield "call", reduce_call(module, name, (value,))
            yield "call2", reduce_call(module, name, (value, value))
        return
    keys = _state_keys(obj)
    yield "build", newobj_build(module, name, dict.fromkeys(keys, code))
    yield "build-path", newobj_build(module, name, dict.fromkeys(keys, path))
    yield "build-nested", newobj_build(module, name, {k: {k: code} for k in keys})
    yield "setattr", newobj_build(module, name, (None, dict.fromkeys(keys, code)))
    yield "call", reduce_call(module, name, (code,) * _positional(obj))
    yield "call-path", reduce_call(module, name, (path,) * _positional(obj))


def _quiet_load(load: object, file: Path) -> None:
    """Load ``file``; any failure is fine, only side effects matter. Warnings are ignored so
    that no restore path stops early at a warning turned into an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # Any failure is fine: the outcome that matters is the marker.
        with contextlib.suppress(Exception):
            load(file)  # type: ignore[operator]


def _allowed_chunks(size: int) -> list[list[tuple[str, str]]]:
    allowed = list(allowed_globals())
    return [allowed[i : i + size] for i in range(0, len(allowed), size)]


@pytest.mark.parametrize("chunk", _allowed_chunks(64), ids=lambda c: f"{c[0][0]}.{c[0][1]}")
def test_crafted_pickles_of_allowed_globals_run_no_code(
    chunk: list[tuple[str, str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # a relative write would land here
    marker = tmp_path / "MARKER"
    tried = 0
    for module, name in chunk:
        for how, data in crafted_pickles(module, name, marker):
            for suffix, load in (
                (".pkl", _pickle_guard.load_pickle),
                (".joblib", _pickle_guard.load_joblib),
            ):
                file = tmp_path / f"crafted{suffix}"
                file.write_bytes(data)
                _quiet_load(load, file)
                file.unlink()
                tried += 1
                assert not marker.exists(), f"{module}.{name} ran code ({how}, {suffix})"
    assert tried >= 4 * len(chunk)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


class _Carrier:
    """Dumped by skops with the crafted attributes; its name is then replaced by the target's."""


def _skops_file(path: Path, module: str, name: str, state: dict[str, str]) -> Path:
    """A skops file holding one ``module.name`` object whose attributes are ``state``: skops
    writes a carrier object, then the schema's root type is renamed to the target."""
    import skops.io as sio

    carrier = _Carrier()
    carrier.__dict__.update(state)
    sio.dump(carrier, path)
    with zipfile.ZipFile(path) as zf:
        members = {info.filename: zf.read(info) for info in zf.infolist()}
    schema = json.loads(members["schema.json"])
    schema["__module__"], schema["__class__"] = module, name
    members["schema.json"] = json.dumps(schema).encode()
    with zipfile.ZipFile(path, "w") as zf:
        for member, data in members.items():
            zf.writestr(member, data)
    return path


def _load_skops(file: Path) -> object:
    options = {"file": file.name, "serialization": "skops"}
    return sklearn_flavor.load(file.parent, options, SIGNATURE)


@pytest.mark.parametrize("chunk", _allowed_chunks(128), ids=lambda c: f"{c[0][0]}.{c[0][1]}")
def test_crafted_skops_files_of_allowed_classes_run_no_code(
    chunk: list[tuple[str, str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "MARKER"
    folder = tmp_path / "model"
    folder.mkdir()
    classes = [(m, n) for m, n in chunk if isinstance(_resolve(m, n), type)]
    for module, name in classes:
        keys = _state_keys(_resolve(module, name))  # type: ignore[arg-type]
        for value in (_code(marker), str(marker)):
            file = _skops_file(folder / "model.skops", module, name, dict.fromkeys(keys, value))
            _quiet_load(_load_skops, file)
            assert not marker.exists(), f"{module}.{name} ran code from a skops file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


# -- the control: the class that broke the old rule, and a rule that is not exact -------------

SCIPY = ("scipy.stats._continuous_distns", "norm_gen")


def test_the_crafting_does_run_code_when_the_guard_is_bypassed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Proves the crafted state is a real exploit: plain pickle.loads runs it."""
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "MARKER"
    data = newobj_build(*SCIPY, {"_parse_arg_template": _code(marker)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with contextlib.suppress(Exception):  # whether it then fails does not matter
            pickle.loads(data)
    assert marker.exists()


@pytest.mark.parametrize("suffix", [".pkl", ".joblib"])
def test_the_scipy_distribution_is_refused_by_name_before_anything_runs(
    suffix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "MARKER"
    file = tmp_path / f"model{suffix}"
    file.write_bytes(newobj_build(*SCIPY, {"_parse_arg_template": _code(marker)}))
    load = _pickle_guard.load_pickle if suffix == ".pkl" else _pickle_guard.load_joblib
    with pytest.raises(UnsafeArtifact, match=r"global 'scipy\.stats\._continuous_distns\."):
        load(file)
    assert not marker.exists()


def test_the_scipy_distribution_in_a_skops_file_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "MARKER"
    file = _skops_file(
        tmp_path / "model.skops", *SCIPY, {"_parse_arg_template": _code(marker), "shapes": ""}
    )
    with pytest.raises(UnsafeArtifact, match=r"scipy\.stats\._continuous_distns\.norm_gen"):
        _load_skops(file)
    assert not marker.exists()


def test_every_refused_global_is_named_at_once(tmp_path: Path) -> None:
    """The scan lists the globals it refuses before any is imported or called."""
    evil = (
        b"\x80\x02"
        + _global("posix", "system")
        + _body(("true",))
        + b"R0"  # call, then POP
        + _global("builtins", "eval")
        + _body(("1",))
        + b"R0"
        + _global("builtins", "list")
        + b")R."
    )
    file = tmp_path / "model.pkl"
    file.write_bytes(evil)
    with pytest.raises(
        UnsafeArtifact, match=r"'posix\.system' is not allowed \(nor 'builtins\.eval'\)"
    ):
        _pickle_guard.load_pickle(file)


def test_a_stack_global_built_from_non_strings_is_refused(tmp_path: Path) -> None:
    """``STACK_GLOBAL`` whose operands the scan cannot read as strings is refused."""
    file = tmp_path / "model.pkl"
    file.write_bytes(b"\x80\x04K\x01K\x02\x93.")  # two ints, then STACK_GLOBAL
    with pytest.raises(UnsafeArtifact, match=r"global '\?\.\?' is not allowed"):
        _pickle_guard.load_pickle(file)


def test_protocol2_bytes_may_use_only_the_latin1_codec(tmp_path: Path) -> None:
    file = tmp_path / "model.pkl"
    file.write_bytes(reduce_call("_codecs", "encode", ("abc", "rot13")))
    with pytest.raises(FlavorError, match="only latin1 is allowed"):
        _pickle_guard.load_pickle(file)
    file.write_bytes(pickle.dumps(b"\x00\xffbytes", protocol=2))
    assert _pickle_guard.load_pickle(file) == b"\x00\xffbytes"


def test_the_crafted_files_are_well_formed(tmp_path: Path) -> None:
    """The crafting reaches the class: an allowed estimator comes back holding the payload
    (so a file refused for being malformed is not what keeps the marker away)."""
    from sklearn.linear_model import LogisticRegression

    module, name = "sklearn.linear_model._logistic", "LogisticRegression"
    state = {"C": "payload", "_sklearn_version": "x"}
    pkl = tmp_path / "model.pkl"
    pkl.write_bytes(newobj_build(module, name, state))
    for load in (_pickle_guard.load_pickle, _pickle_guard.load_joblib):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loaded = load(pkl)
        assert isinstance(loaded, LogisticRegression)
        assert loaded.C == "payload"
    folder = tmp_path / "skops"
    folder.mkdir()
    file = _skops_file(folder / "model.skops", module, name, state)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        predictor: Any = _load_skops(file)
    assert isinstance(predictor.model, LogisticRegression)
    assert predictor.model.C == "payload"
