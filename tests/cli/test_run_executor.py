"""Which executor 'opsloop run' opens: --executor and --address, else opsloop.yaml."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsloop.cli.run import open_executor
from opsloop.context import open_project
from opsloop.errors import ConfigError


def test_flags_then_spec_then_local(tmp_path: Path) -> None:
    (tmp_path / "opsloop.yaml").write_text("project: p\nexecutor:\n  name: inline\n")
    proj = open_project(tmp_path)
    try:
        with open_executor(proj, None, None, None) as exe:
            assert exe.name == "inline"
        with open_executor(proj, "local", None, 3) as exe:
            assert exe.name == "local" and exe.max_workers == 3
        with pytest.raises(ConfigError, match="--address is for the ray executor, not 'local'"):
            open_executor(proj, "local", "auto", None)
    finally:
        proj.close()
    (tmp_path / "opsloop.yaml").write_text("project: p\n")
    proj = open_project(tmp_path)
    try:
        with open_executor(proj, None, None, None) as exe:
            assert exe.name == "local"
    finally:
        proj.close()
