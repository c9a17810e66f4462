"""The verdict per name that the scanner reports and check_types refuses on."""

from __future__ import annotations

import pytest

from opsloop.errors import UntrustedTypeError
from opsloop.registry import trust as registry_trust
from opsloop.secops.trust import TypeRef, check_types, classify_types


def test_classify_types_gives_each_name_its_worst_verdict() -> None:
    refs = [
        TypeRef("sklearn.linear_model._logistic.LogisticRegression", frozenset({"instance"})),
        TypeRef("posix.system"),
        TypeRef("mypkg.models.Thing", frozenset({"instance"})),
        TypeRef("tests.registry.trust_aliases.double"),
        TypeRef("builtins.dict", vouched=True),
        # The same name used twice: once harmlessly, once through a denied module.
        TypeRef("mypkg.models.Other", frozenset({"instance"}), module="mypkg.models"),
        TypeRef("mypkg.models.Other", module="subprocess", attr="Popen"),
    ]
    verdicts = classify_types(refs, extra=["tests.registry.trust_aliases.double"])
    assert verdicts == {
        "sklearn.linear_model._logistic.LogisticRegression": "trusted",
        "posix.system": "denied",
        "mypkg.models.Thing": "untrusted",
        "tests.registry.trust_aliases.double": "extra",
        "builtins.dict": "trusted",
        "mypkg.models.Other": "denied",
    }
    with pytest.raises(UntrustedTypeError, match=r"never be trusted: mypkg\.models\.Other"):
        check_types(refs, where="m", extra=["tests.registry.trust_aliases.double"])


def test_the_registry_re_exports_the_same_objects() -> None:
    assert registry_trust.check_types is check_types
    assert registry_trust.TypeRef is TypeRef
