"""A static look at pyfunc code for calls and imports that are plainly dangerous in a model.

A pyfunc artifact is code, and loading one means running it with the loader's rights; only a
person can decide to trust it (see :mod:`modelport.flavors.pyfunc`). This scan is an early
warning beside that decision, never the decision: it reads each ``.py`` file with :mod:`ast`
(nothing is imported or run) and reports what no model needs to do: run shell commands or
other programs (``os.system``, ``posix.system``, ``subprocess``, ``pty``, asyncio's
subprocesses), evaluate strings as code (``eval``, ``exec``, ``compile``, ``__import__``,
``importlib.import_module``, ``runpy``, ``timeit``), unpickle (``pickle.loads``,
``joblib.load``, ``numpy.load``, ``pandas.read_pickle``, ``marshal``, ...) or load native code
(``ctypes``, ``_ctypes``). Compiled files (``.pyc``, extension modules) are reported too: they
are never loaded, only the checksummed ``.py`` sources are.

It catches the obvious, not the determined: ``getattr(os, "sys" + "tem")`` passes.

:func:`decode_source` is the one way pyfunc source bytes become text, for this scan and for the
importer alike, so both read the same code: UTF-8, with no other encoding declared.
"""

from __future__ import annotations

import ast
import codecs
import re
from pathlib import Path

from modelport.errors import FlavorError

# Importing any of these, or anything from them, is reported.
_MODULES = frozenset(
    {"subprocess", "pty", "ctypes", "_ctypes", "marshal", "shelve", "posix", "nt",
     "_posixsubprocess", "timeit", "code", "codeop", "cffi"}
)  # fmt: skip

# Dotted names that are reported when called or imported by name (``from os import system``).
_CALLS = frozenset(
    {
        "os.system", "os.popen", "os.posix_spawn", "os.posix_spawnp",
        "os.execl", "os.execle", "os.execlp", "os.execlpe",
        "os.execv", "os.execve", "os.execvp", "os.execvpe",
        "os.spawnl", "os.spawnle", "os.spawnlp", "os.spawnlpe",
        "os.spawnv", "os.spawnve", "os.spawnvp", "os.spawnvpe",
        "eval", "exec", "compile", "__import__",
        "builtins.eval", "builtins.exec", "builtins.compile", "builtins.__import__",
        "pickle.load", "pickle.loads", "pickle.Unpickler", "_pickle.load", "_pickle.loads",
        "dill.load", "dill.loads", "cloudpickle.load", "cloudpickle.loads", "joblib.load",
        "runpy.run_path", "runpy.run_module",
        "importlib.import_module", "importlib.__import__", "importlib.reload",
        "importlib.util.spec_from_file_location", "importlib.machinery.SourceFileLoader",
        "pandas.read_pickle", "torch.load",
        "asyncio.create_subprocess_shell", "asyncio.create_subprocess_exec",
        "os.fork", "os.forkpty", "os.startfile",
    }
)  # fmt: skip
# Array readers that unpickle only when asked to (``allow_pickle=True``).
_PICKLE_OPT_IN = frozenset({"numpy.load", "numpy.lib.npyio.load"})


def _opts_into_pickle(call: ast.Call) -> bool:
    """True unless ``allow_pickle`` is absent or the constant False."""
    for keyword in call.keywords:
        if keyword.arg == "allow_pickle":
            value = keyword.value
            return not (isinstance(value, ast.Constant) and value.value is False)
        if keyword.arg is None:  # **kwargs: cannot tell
            return True
    return False


# Files that Python could run but this project never loads: reported so nobody is surprised.
_COMPILED_SUFFIXES = (".pyc", ".pyo", ".so", ".pyd", ".dylib", ".dll")
# PEP 263: an encoding declaration on the first or second line.
_CODING = re.compile(rb"^[ \t\f]*#.*?coding[:=][ \t]*([-\w.]+)")


def decode_source(data: bytes, filename: str) -> str:
    """The text of a pyfunc source file: UTF-8 (a BOM is allowed), and nothing else.

    Python honours a ``# coding: ...`` line, so a file declaring, say, UTF-7 would be read one
    way by a scanner decoding UTF-8 and another way by the interpreter. Such files are refused
    outright, and the importer compiles this exact text, so what is checked is what runs.
    """
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    for line in data.splitlines()[:2]:
        match = _CODING.match(line)
        if match and _codec(match.group(1)) != "utf-8":
            declared = match.group(1).decode("ascii", "replace")
            raise FlavorError(f"{filename}: declares the encoding {declared!r}; use UTF-8")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FlavorError(
            f"{filename}: not valid UTF-8 ({exc.reason} at byte {exc.start})"
        ) from None


def _codec(name: bytes) -> str:
    try:
        return codecs.lookup(name.decode("ascii")).name
    except (LookupError, UnicodeDecodeError):
        return "unknown"


def scan_source(source: str, filename: str) -> list[tuple[int, str]]:
    """``(line, what)`` for each dangerous call or import in ``source``, in line order.

    A file that does not parse is reported too: its code cannot be checked.
    """
    try:
        tree = ast.parse(source, filename=filename)
    except SyntaxError as exc:
        return [(exc.lineno or 0, "is not valid Python, so it cannot be checked")]
    visitor = _Visitor()
    visitor.visit(tree)
    return sorted(visitor.found)


def scan_folder(folder: Path) -> list[tuple[str, int, str]]:
    """``(file relative to folder, line, what)`` for every ``.py`` file under ``folder``, and
    for each compiled file (which is never loaded)."""
    found: list[tuple[str, int, str]] = []
    for file in sorted(folder.rglob("*")):
        rel = file.relative_to(folder).as_posix()
        if file.suffix in _COMPILED_SUFFIXES and file.is_file():
            found.append((rel, 0, "is compiled code, which is never loaded (only .py sources)"))
        if file.suffix != ".py" or not file.is_file():
            continue
        try:
            source = decode_source(file.read_bytes(), rel)
        except FlavorError as exc:
            found.append((rel, 1, str(exc).partition(": ")[2]))
            continue
        found.extend((rel, line, what) for line, what in scan_source(source, rel))
    return found


class _Visitor(ast.NodeVisitor):
    """Collects findings; local names bound by imports are resolved to what they import."""

    def __init__(self) -> None:
        self.found: list[tuple[int, str]] = []
        self._aliases: dict[str, str] = {}

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._aliases[(alias.asname or alias.name).split(".")[0]] = (
                alias.name if alias.asname else alias.name.split(".")[0]
            )
            if _dangerous_module(alias.name):
                self.found.append((node.lineno, f"imports {alias.name}"))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        if node.level == 0 and _dangerous_module(module):
            self.found.append((node.lineno, f"imports from {module}"))
        # A relative import keeps its dots, so ``from .helpers import eval`` is not ``eval``.
        base = "." * node.level + module
        for alias in node.names:
            full = f"{base}.{alias.name}" if base else alias.name
            self._aliases[alias.asname or alias.name] = full
            if node.level == 0 and full in _CALLS:
                self.found.append((node.lineno, f"imports {full}"))

    def visit_Call(self, node: ast.Call) -> None:
        name = self._dotted(node.func)
        if name is not None and (name in _CALLS or _dangerous_module(name)):
            self.found.append((node.lineno, f"calls {name}"))
        elif name in _PICKLE_OPT_IN and _opts_into_pickle(node):
            self.found.append((node.lineno, f"calls {name} with allow_pickle"))
        self.generic_visit(node)

    def _dotted(self, node: ast.expr) -> str | None:
        """``os.system`` for ``os.system`` (or ``o.system`` after ``import os as o``)."""
        parts: list[str] = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if not isinstance(node, ast.Name):
            return None
        parts.append(self._aliases.get(node.id, node.id))
        return ".".join(reversed(parts))


def _dangerous_module(name: str) -> bool:
    return name.split(".")[0] in _MODULES
