"""What a model file may name: the allow-list and the denylist.

They live in :mod:`opsloop.secops.trust`, below the registry, so that the model scanner uses
the very rules that registration and loading enforce; this module re-exports them.
"""

from __future__ import annotations

from opsloop.secops.trust import (
    DENIED_MODULES,
    DENIED_NAMES,
    TRUSTED,
    TypeRef,
    Use,
    check_extra_types,
    check_types,
    is_denied,
)

__all__ = [
    "DENIED_MODULES",
    "DENIED_NAMES",
    "TRUSTED",
    "TypeRef",
    "Use",
    "check_extra_types",
    "check_types",
    "is_denied",
]
