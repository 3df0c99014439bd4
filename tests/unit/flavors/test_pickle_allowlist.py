"""The allow-list is exact and audited: every entry resolves, and every hook that unpickling an
allowed class can run was read and recorded in ``AUDIT``.

When a scikit-learn, numpy or scipy release adds or moves such a hook, this test names it; read
what it does on restore, then add it to ``AUDIT`` (or drop the class from ``ALLOWED``).
"""

from __future__ import annotations

import ast
import importlib
import inspect
import textwrap
import types
from collections.abc import Iterator

import pytest

from modelport.flavors import _pickle_guard
from modelport.flavors._pickle_allowlist import ALLOWED
from modelport.flavors._pickle_audit import AUDIT

# Hooks that pickle (or skops) can reach on an instance while loading; see the allow-list's
# module docstring for which opcode reaches which.
CHAINED = ("__new__", "__init__", "__setstate__")  # may call the next one up the MRO
FIRST_ONLY = (
    "__setattr__", "__getattr__", "__setitem__", "append", "extend", "add", "__hash__",
    "__eq__", "__del__",
)  # fmt: skip
BUILTIN_TYPES: tuple[type, ...] = (
    object, dict, list, tuple, set, frozenset, int, float, complex, str, bytes, bool, bytearray,
    slice, range, type,
)  # fmt: skip


def allowed_globals() -> list[tuple[str, str]]:
    """Every allowed ``(module, name)``, sorted."""
    return sorted((module, name) for module, names in ALLOWED.items() for name in names)


def _resolve(module: str, name: str) -> object:
    return getattr(importlib.import_module(module), name)


def _allowed() -> Iterator[tuple[str, str, object]]:
    for module, name in allowed_globals():
        yield module, name, _resolve(module, name)


def _key(cls: type, hook: str) -> str:
    return f"{cls.__module__}.{cls.__qualname__}.{hook}"


def hooks_of(cls: type) -> Iterator[tuple[str, object]]:
    """``(key, implementation)`` of each hook an instance of ``cls`` can run while loading."""
    for hook in (*CHAINED, *FIRST_ONLY):
        for owner in cls.__mro__:
            if hook not in owner.__dict__:
                continue
            if owner not in BUILTIN_TYPES and owner.__dict__[hook] is not None:
                yield _key(owner, hook), owner.__dict__[hook]
            if hook not in CHAINED:
                break
    if getattr(cls, "__setstate__", None) is not None:
        return  # BUILD hands the state to __setstate__: no setattr through descriptors
    seen: set[str] = set()
    for owner in cls.__mro__:
        if owner in BUILTIN_TYPES:
            continue
        for attr, value in owner.__dict__.items():
            if attr in seen or attr in ("__dict__", "__weakref__"):
                continue
            seen.add(attr)
            if isinstance(value, types.FunctionType) or not hasattr(type(value), "__set__"):
                continue
            if isinstance(value, property) and value.fset is None:
                continue
            yield _key(owner, f"{attr}.__set__"), value


def only_assigns(init: object) -> bool:
    """True for an ``__init__`` whose body only assigns to ``self.<attr>`` (and calls
    ``super().__init__``): scikit-learn's rule for estimator constructors, checked here from
    the source rather than listed one by one."""
    try:
        source = textwrap.dedent(inspect.getsource(init))  # type: ignore[arg-type]
    except (OSError, TypeError):
        return False  # compiled: it must be audited by hand
    function = ast.parse(source).body[0]
    assert isinstance(function, ast.FunctionDef)
    for statement in function.body:
        if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant):
            continue  # docstring
        if isinstance(statement, ast.Assign) and all(
            isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "self"
            for t in statement.targets
        ):
            continue
        if (
            isinstance(statement, ast.Expr)
            and isinstance(statement.value, ast.Call)
            and isinstance(statement.value.func, ast.Attribute)
            and statement.value.func.attr == "__init__"
            and isinstance(statement.value.func.value, ast.Call)
            and getattr(statement.value.func.value.func, "id", None) == "super"
        ):
            continue
        return False
    return True


def test_every_entry_is_an_exact_name_that_resolves() -> None:
    for module, names in ALLOWED.items():
        assert all(part.isidentifier() for part in module.split(".")), module
        for name in names:
            assert name.isidentifier(), f"{module}.{name}: names are single identifiers"
            assert _resolve(module, name) is not None, f"{module}.{name}"


def test_every_hook_of_every_allowed_class_was_audited() -> None:
    unaudited: set[str] = set()
    for module, name, obj in _allowed():
        if not isinstance(obj, type):
            continue
        for key, implementation in hooks_of(obj):
            if key in AUDIT:
                continue
            if key.endswith(".__init__") and only_assigns(implementation):
                continue
            unaudited.add(f"{key} (reached by {module}.{name})")
    assert not unaudited, "read these and record them in AUDIT:\n" + "\n".join(sorted(unaudited))


def test_every_allowed_function_was_audited() -> None:
    functions = {f"{m}.{n}" for m, n, obj in _allowed() if not isinstance(obj, type)}
    assert functions, "the list holds functions (numpy reconstructors at least)"
    assert sorted(functions - set(AUDIT)) == []


def test_the_audit_check_catches_code_on_restore() -> None:
    """The scipy class whose ``__setstate__`` runs ``exec``: the audit check flags it."""
    from scipy.stats._distn_infrastructure import rv_generic

    keys = {key for key, _ in hooks_of(rv_generic)}
    assert "scipy.stats._distn_infrastructure.rv_generic.__setstate__" in keys
    assert not keys <= set(AUDIT)
    assert not _pickle_guard.is_allowed("scipy.stats._continuous_distns", "norm_gen")


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("scipy.stats._continuous_distns", "norm_gen"),
        ("scipy.stats._distn_infrastructure", "rv_continuous_frozen"),
        ("numpy", "load"),
        ("numpy.lib._npyio_impl", "load"),
        ("numpy", "memmap"),
        ("builtins", "getattr"),
        ("builtins", "eval"),
        ("sklearn.utils._testing", "TempMemmap"),
        ("sklearn", "base"),
        ("sklearn.pipeline", "Pipeline.__init__"),
    ],
)
def test_packages_and_dotted_names_are_not_entries(module: str, name: str) -> None:
    assert not _pickle_guard.is_allowed(module, name)


def test_python2_and_numpy1_names_map_onto_entries() -> None:
    assert _pickle_guard.is_allowed("__builtin__", "set")
    assert _pickle_guard.is_allowed("copy_reg", "_reconstructor")
    assert _pickle_guard.is_allowed("numpy.core.multiarray", "_reconstruct")
    assert not _pickle_guard.is_allowed("__builtin__", "eval")


def _owner_and_attribute(key: str) -> tuple[object, str]:
    """The object a key's last part is looked up on, found from the longest importable
    module prefix (``a.b.Class.hook`` -> ``(Class, "hook")``)."""
    parts = key.removesuffix(".__set__").split(".")
    for split in range(len(parts) - 1, 0, -1):
        try:
            owner: object = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for part in parts[split:-1]:
            owner = getattr(owner, part)
        return owner, parts[-1]
    raise AssertionError(f"no module in {key!r}")


def test_audit_keys_name_real_hooks() -> None:
    """A typo in AUDIT would silently audit nothing: every key names something that exists."""
    missing = [key for key in AUDIT if not hasattr(*_owner_and_attribute(key))]
    assert missing == []
