"""The ``opsloop.yaml`` schema and its loader."""

from opsloop.spec.loader import SPEC_FILE, find_project_dir, load_spec, parse_spec
from opsloop.spec.schema import SCHEMA_VERSION, ProjectSpec

__all__ = [
    "SCHEMA_VERSION",
    "SPEC_FILE",
    "ProjectSpec",
    "find_project_dir",
    "load_spec",
    "parse_spec",
]
