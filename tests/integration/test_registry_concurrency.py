"""Four processes registering into one fresh registry at once, on SQLite and PostgreSQL.

The registry's promise: numbers 1..N with no gaps and no duplicates, every version ready and
loadable, and the first open of a fresh database migrates it exactly once.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelport.registry import Registry

pytestmark = pytest.mark.slow

WORKER = Path(__file__).with_name("registry_worker.py")
PROCESSES = 4  # on two cores, four already interleave; each more only adds start-up
EACH = 5


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    ]
)
def fresh_registry_uri(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database nobody has opened yet, so the children also race the migrations."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'registry.db'}"
    else:
        yield request.getfixturevalue("fresh_pg_database")


def test_concurrent_registrations_get_distinct_consecutive_versions(
    fresh_registry_uri: str, tmp_path: Path
) -> None:
    artifacts = str(tmp_path / "artifacts")
    go = tmp_path / "go"
    children = [
        subprocess.Popen(
            [
                sys.executable,
                str(WORKER),
                "register",
                fresh_registry_uri,
                artifacts,
                str(go),
                str(EACH),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(PROCESSES)
    ]
    go.touch()
    numbers: list[int] = []
    for child in children:
        out, err = child.communicate(timeout=240)
        assert child.returncode == 0, err
        numbers += json.loads(out)

    total = PROCESSES * EACH
    assert sorted(numbers) == list(range(1, total + 1))
    with Registry(registry_uri=fresh_registry_uri, artifact_uri=artifacts) as registry:
        page = registry.list_versions("churn", max_results=100)
        assert [v.version for v in page.items] == list(range(total, 0, -1))
        assert {v.status for v in page.items} == {"ready"}
        assert len({v.artifact_key for v in page.items}) == total
        for version in page.items:
            assert registry.load(f"churn/{version.version}").name == "churn"
