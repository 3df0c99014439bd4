"""What importing modelport costs and changes, each checked in a fresh interpreter.

The client imports no server: ``import modelport.client`` loads the wire codecs
(``modelport.protocol``) and httpx, and none of the server's or the registry's modules or
frameworks. ``import modelport`` changes nothing in the process: Arrow's allocator settings
are set by the ``modelport`` command, which owns its process, and not by the library.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from modelport import _arrow_allocator

pytestmark = pytest.mark.slow  # fresh interpreters

SERVER_SIDE = (
    "starlette",
    "uvicorn",
    "sqlalchemy",
    "alembic",
    "pandas",
    "pyarrow",
    "modelport.serving",
    "modelport.registry",
)


def _clean_env(**extra: str) -> dict[str, str]:
    """This environment without the allocator settings, so that setting one would show."""
    env = {k: v for k, v in os.environ.items() if k not in _arrow_allocator.SETTINGS}
    return {**env, **extra}


def _run(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=_clean_env() if env is None else env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done


def _loaded(statement: str) -> list[str]:
    """The names in SERVER_SIDE that ``statement`` loads, in a fresh interpreter."""
    code = f"""
        import json, sys
        {statement}
        print(json.dumps(sorted(sys.modules)))
    """
    modules = set(json.loads(_run(code).stdout.splitlines()[-1]))
    return sorted(m for m in SERVER_SIDE if m in modules)


@pytest.mark.parametrize(
    "statement",
    ["import modelport.client", "from modelport import Client", "import modelport.protocol.v2"],
)
def test_the_client_imports_no_server(statement: str) -> None:
    assert _loaded(statement) == []


def test_the_check_sees_a_server_import() -> None:
    """Control: the same check finds the server's modules when they are imported."""
    assert {"starlette", "modelport.serving"} <= set(_loaded("import modelport.serving.v2"))


def test_import_modelport_leaves_the_environment_alone() -> None:
    """Nor the environment, nor prometheus_client's global registry and its settings: the
    server's metrics are made per app (see test_metrics_per_app)."""
    code = """
        import json, os
        import prometheus_client
        from prometheus_client import metrics

        def state():
            return {
                "environ": dict(os.environ),
                "collectors": sorted(prometheus_client.REGISTRY._names_to_collectors),
                "created": metrics._use_created,
            }

        before = state()
        import modelport
        from modelport import Client, Registry, load, save
        import modelport.serving.app, modelport.monitoring.metrics, modelport.cli
        print(json.dumps([before, state()]))
    """
    before, after = json.loads(_run(code).stdout.splitlines()[-1])
    assert after["environ"] == before["environ"]
    assert after["collectors"] == before["collectors"]
    assert after["created"] is before["created"] is True


MAIN = """
    import json, os, sys
    {prelude}
    from modelport.cli import main
    try:
        main(["--version"])
    except SystemExit as exc:
        assert not exc.code, exc.code
    names = {names!r}
    print(json.dumps({{name: os.environ.get(name) for name in names}}))
"""


def _main(prelude: str = "", **env: str) -> tuple[dict[str, str], str]:
    code = MAIN.format(prelude=prelude, names=list(_arrow_allocator.SETTINGS))
    done = _run(code, _clean_env(**env))
    return json.loads(done.stdout.splitlines()[-1]), done.stderr


def test_the_command_sets_the_allocator_settings() -> None:
    seen, stderr = _main()
    assert seen == dict(_arrow_allocator.SETTINGS)
    assert "pyarrow" not in stderr


def test_values_in_the_environment_win() -> None:
    seen, _ = _main(MIMALLOC_PURGE_DELAY="0")
    assert seen == {**_arrow_allocator.SETTINGS, "MIMALLOC_PURGE_DELAY": "0"}
    assert _arrow_allocator.defaults({"MIMALLOC_ARENA_EAGER_COMMIT": "1", "OTHER": "x"}) == {
        "MIMALLOC_PURGE_DELAY": "10",
        "MIMALLOC_ARENA_EAGER_COMMIT": "1",
    }


def test_the_command_warns_when_pyarrow_came_first() -> None:
    seen, stderr = _main("import pyarrow")
    assert seen == dict(_arrow_allocator.SETTINGS)
    assert "pyarrow was imported before modelport set MIMALLOC_" in stderr
