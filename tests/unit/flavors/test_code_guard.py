"""The pyfunc code scan: plainly dangerous calls and imports are reported with their line,
ordinary model code is not, and nothing is imported or run to find out."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from modelport.flavors import _code_guard
from modelport.flavors import pyfunc as flavor


def _scan(source: str) -> list[tuple[int, str]]:
    return _code_guard.scan_source(textwrap.dedent(source).strip() + "\n", "m.py")


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import os\nos.system('id')", [(2, "calls os.system")]),
        ("import os as o\no.popen('id')", [(2, "calls os.popen")]),
        ("from os import system\nsystem('id')", [(1, "imports os.system"), (2, "calls os.system")]),
        ("from os import execv as run\nrun('sh', [])",
         [(1, "imports os.execv"), (2, "calls os.execv")]),
        ("import subprocess\nsubprocess.run(['id'])",
         [(1, "imports subprocess"), (2, "calls subprocess.run")]),
        ("from subprocess import Popen", [(1, "imports from subprocess")]),
        ("import ctypes.util", [(1, "imports ctypes.util")]),
        ("eval('1')", [(1, "calls eval")]),
        ("x = 1\nexec(code)", [(2, "calls exec")]),
        ("__import__('os')", [(1, "calls __import__")]),
        ("import pickle\npickle.loads(b'')", [(2, "calls pickle.loads")]),
        ("import builtins\nbuiltins.eval('1')", [(2, "calls builtins.eval")]),
        ("def f():\n    import joblib\n    return joblib.load(p)", [(3, "calls joblib.load")]),
        ("def f(): pass\nf(eval('1'))", [(2, "calls eval")]),
        # The calls an attack round used to get past the scan:
        ("import posix\nposix.system('id')", [(1, "imports posix"), (2, "calls posix.system")]),
        ("import importlib\nimportlib.import_module('subprocess')",
         [(2, "calls importlib.import_module")]),
        ("import timeit\ntimeit.timeit('x')", [(1, "imports timeit"), (2, "calls timeit.timeit")]),
        ("import numpy as np\nnp.load(p, allow_pickle=True)",
         [(2, "calls numpy.load with allow_pickle")]),
        ("import pandas as pd\npd.read_pickle(p)", [(2, "calls pandas.read_pickle")]),
        ("import asyncio\nasyncio.create_subprocess_shell('id')",
         [(2, "calls asyncio.create_subprocess_shell")]),
        ("import _ctypes", [(1, "imports _ctypes")]),
    ],
)  # fmt: skip
def test_dangerous_code_is_reported_with_its_line(
    source: str, expected: list[tuple[int, str]]
) -> None:
    assert _scan(source) == expected


@pytest.mark.parametrize(
    "source",
    [
        "import os\nos.path.join('a', 'b')\nos.environ.get('X')",
        "import re\nre.compile('x')",
        "self.model.eval()",
        "import json, pathlib\njson.loads(pathlib.Path('w.json').read_text())",
        "import numpy as np\nnp.load('w.npy')",
        "import numpy as np\nnp.load('w.npy', allow_pickle=False)",
        "from .helpers import eval\neval(x)",
        "import time\ntime.sleep(1)",
        "import os\nsystem = os.cpu_count",
    ],
)
def test_ordinary_model_code_passes(source: str) -> None:
    assert _scan(source) == []


def test_a_file_that_does_not_parse_cannot_be_checked() -> None:
    assert _scan("def broken(:\n") == [(1, "is not valid Python, so it cannot be checked")]


def test_the_flavor_scans_every_python_file_of_an_artifact(tmp_path: Path) -> None:
    (tmp_path / "code" / "pkg").mkdir(parents=True)
    (tmp_path / "code" / "pkg" / "__init__.py").write_text("")
    (tmp_path / "code" / "pkg" / "model.py").write_text("import numpy\n\nexec('x = 1')\n")
    (tmp_path / "artifacts" / "extra").mkdir(parents=True)
    (tmp_path / "artifacts" / "extra" / "run.py").write_text("import subprocess\n")
    (tmp_path / "artifacts" / "extra" / "notes.txt").write_text("eval('1')\n")
    assert flavor.find_unsafe(tmp_path, {}) == [
        ("artifacts/extra/run.py", "line 1 imports subprocess"),
        ("code/pkg/model.py", "line 3 calls exec"),
    ]
