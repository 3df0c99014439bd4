"""Loading a registered model by ref in a fresh interpreter, as a user's other process would."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np

LOAD_AND_PREDICT = """
import json, sys
import numpy as np
import modelport
settings = modelport.Settings(home=sys.argv[1])
rows = np.asarray(json.loads(sys.argv[3]), dtype=np.float32)
loaded = modelport.load(sys.argv[2], settings=settings)
print(json.dumps({"flavor": loaded.manifest.flavor, "predictions": loaded.predict(rows).tolist()}))
"""


def predict_in_fresh_process(home: Path, ref: str, rows: np.ndarray) -> dict[str, Any]:
    """``{"flavor": ..., "predictions": [...]}`` from ``modelport.load(ref)`` in a new
    interpreter (float32 rows); fails the test with the child's stderr if it fails."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(LOAD_AND_PREDICT), str(home), ref,
         json.dumps(rows.tolist())],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    answer: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return answer
