"""The OpenAPI document is the contract: schemathesis calls every operation with generated
requests (bounded) on a real server and checks every answer against the document, and that
operations which declare bearer auth refuse requests without a valid token."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    response_schema_conformance,
    status_code_conformance,
)

from opsloop.api import create_app
from opsloop.secops.access import Identity
from tests.api.conftest import Populated, running, token_authenticator

pytestmark = pytest.mark.slow

#: Generated requests per operation: enough to find a missing response declaration or a
#: 500 on odd input, few enough to keep the whole file within a minute or so.
MAX_EXAMPLES = 10

CHECKS = [
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
    content_type_conformance,
    ignored_auth,
]


@pytest.fixture
def api_schema(populated: Populated) -> Iterator[Any]:
    """The document of a real server with token auth, over the populated project."""
    with running(create_app(populated.project, authenticate=token_authenticator)) as url:
        yield _with_token(schemathesis.openapi.from_url(f"{url}/api/v1/openapi.json"))


def _failures(
    schema: Any, operations: list[Any], mode: GenerationMode = GenerationMode.POSITIVE
) -> list[str]:
    failures: list[str] = []
    for operation in operations:

        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(mode))
        def check(case: Any) -> None:
            case.call_and_validate(checks=CHECKS)

        try:
            check()
        # schemathesis reports failures as a group (a BaseExceptionGroup); every operation is
        # tried and every failure reported.
        except (Exception, BaseExceptionGroup) as exc:
            failures.append(f"{operation.label}:\n{exc}")
    return failures


def _with_token(schema: Any) -> Any:
    @schema.auth()
    class AdminToken:
        def get(self, case: Any, context: Any) -> str:
            return "admin-token"

        def set(self, case: Any, data: str, context: Any) -> None:
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}

    return schema


def test_every_operation_keeps_the_contract(api_schema: Any) -> None:
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 30, [op.label for op in operations]
    failures = _failures(api_schema, operations)
    assert not failures, "\n\n".join(failures)


def test_invalid_requests_get_declared_problems(api_schema: Any) -> None:
    # Requests that break the document (wrong types, missing fields, out-of-range values)
    # must be refused with a declared 4xx problem, never a 5xx or an undeclared status.
    operations = [result.ok() for result in api_schema.get_all_operations()]
    failures = _failures(api_schema, operations, GenerationMode.NEGATIVE)
    assert not failures, "\n\n".join(failures)


def test_the_checks_catch_an_api_that_ignores_its_declared_auth(populated: Populated) -> None:
    # The same document, served by an app whose authenticator lets everyone in: the auth
    # check must say so (the checks above can fail).
    def anyone(token: str | None) -> Identity:
        return Identity("anyone", roles=frozenset({"admin"}))

    with running(create_app(populated.project, authenticate=anyone)) as url:
        schema = _with_token(schemathesis.openapi.from_url(f"{url}/api/v1/openapi.json"))
        runs = schema["/api/v1/models"]["GET"]
        failures = _failures(schema, [runs])
    assert failures and "auth" in failures[0].lower(), failures
