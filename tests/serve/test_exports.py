"""The package's public names, and the split between core contracts and the serve extra."""

from __future__ import annotations

import subprocess
import sys

import opsloop.serve as serve_pkg
from tests.public_names import check_export


def test_every_public_name_resolves() -> None:
    for name in serve_pkg.__all__:
        check_export(serve_pkg, name)
    # The lazy names come from the module the table names.
    for name, module in serve_pkg._LAZY.items():
        assert getattr(serve_pkg, name).__module__ == f"opsloop.serve.{module}", name


def test_contracts_import_without_the_server_stack() -> None:
    # orjson is not in the list: it is a core dependency, the store decodes JSON with it.
    code = (
        "import sys\n"
        "from opsloop.serve import ColumnSpec, ServableModel, SklearnServable\n"
        "heavy = {'starlette', 'uvicorn', 'prometheus_client'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_missing_extra_names_the_pip_command() -> None:
    # orjson is not in the list: it is a core dependency, the store decodes JSON with it.
    code = (
        "import sys\n"
        "sys.modules['starlette'] = None\n"
        "from opsloop.errors import MissingDependencyError\n"
        "import opsloop.serve as s\n"
        "try:\n"
        "    s.create_app\n"
        "except MissingDependencyError as exc:\n"
        "    print(exc.package, exc.hint)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert out.stdout.strip() == "starlette pip install 'opsloop[serve]'"
