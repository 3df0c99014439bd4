"""A static look at pyfunc code for calls and imports that are plainly dangerous in a model.

A pyfunc artifact is code, and registering one from someone else means running their code.
This scan reads each ``.py`` file with :mod:`ast` (nothing is imported or run) and reports
what no model needs to do: run shell commands or other programs (``os.system``,
``subprocess``, ``pty``), evaluate strings as code (``eval``, ``exec``, ``compile``,
``__import__``, ``runpy``), unpickle (``pickle.loads``, ``joblib.load``, ``marshal``, ...:
that would smuggle a pickle past the allow-list the sklearn flavor applies) or load native
code (``ctypes``).

It catches the obvious, not the determined: ``getattr(os, "sys" + "tem")`` passes. That is
why registration refuses only what it finds and a person must still decide to trust code
from elsewhere; it is a tripwire, not a sandbox.
"""

from __future__ import annotations

import ast
from pathlib import Path

# Importing any of these, or anything from them, is reported.
_MODULES = frozenset({"subprocess", "pty", "ctypes", "marshal", "shelve"})

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
    }
)  # fmt: skip


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
    """``(file relative to folder, line, what)`` for every ``.py`` file under ``folder``."""
    found: list[tuple[str, int, str]] = []
    for file in sorted(folder.rglob("*.py")):
        rel = file.relative_to(folder).as_posix()
        source = file.read_text(encoding="utf-8", errors="replace")
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
