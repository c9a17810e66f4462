"""Every ``opsloop`` call starts by importing the CLI: it must not load the heavy stacks."""

from __future__ import annotations

import json
import subprocess
import sys

# What 'opsloop --help' never needs: the ML and data stack, the server, the store and YAML,
# which only the commands that use them load. (Not pydantic: typer coerces option values with
# it.)
HEAVY = (
    "alembic",
    "matplotlib",
    "numpy",
    "optuna",
    "pandas",
    "prometheus_client",
    "pyarrow",
    "scipy",
    "skops",
    "sklearn",
    "sqlalchemy",
    "starlette",
    "uvicorn",
    "yaml",
)


def _loaded_after(code: str) -> list[str]:
    script = (
        f"import json, sys\n{code}\n"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr
    loaded: list[str] = json.loads(out.stdout.strip().splitlines()[-1])
    return loaded


def test_importing_the_cli_loads_no_heavy_module() -> None:
    assert _loaded_after("import opsloop.cli.main") == []


def test_every_help_page_loads_no_heavy_module() -> None:
    # Building the help pages evaluates every command's annotations: they must not need the
    # heavy modules either.
    code = (
        "import contextlib, io\n"
        "from opsloop.cli.main import cli, main\n"
        "def paths(command, prefix=()):\n"
        "    yield prefix\n"
        "    for name, sub in sorted(getattr(command, 'commands', {}).items()):\n"
        "        yield from paths(sub, (*prefix, name))\n"
        "every = list(paths(cli()))\n"
        "assert len(every) > 20, every\n"
        "for path in every:\n"
        "    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "        main([*path, '--help'])\n"
    )
    assert _loaded_after(code) == []


def test_the_check_sees_a_heavy_import() -> None:
    assert {"numpy", "pandas"} <= set(_loaded_after("import opsloop.serve.base"))
