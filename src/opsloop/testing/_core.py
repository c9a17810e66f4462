"""Named checks, and running a suite of them."""

from __future__ import annotations

import re
import traceback
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

__all__ = ["Check", "raises", "run_checks"]

S = TypeVar("S")

if not __debug__:
    # The checks are plain assert statements, which ``python -O`` removes: every check would
    # pass without checking anything.
    raise ImportError("opsloop.testing needs assert statements: run Python without -O")


@dataclass(frozen=True)
class Check(Generic[S]):
    """One check of a contract, called with what it checks.

    A failure raises AssertionError whose message starts with the check's name; any other
    exception the implementation raises becomes such an AssertionError too (chained).

    Attributes:
        name: The check's name (``check_...``).
        func: The check itself.
        slow: Whether it takes long (tens of seconds), for test suites that mark such tests.
    """

    name: str
    func: Callable[[S], None]
    slow: bool = False

    @property
    def description(self) -> str:
        """The first line of the check's docstring."""
        # A check with bound arguments is a functools.partial; its docstring is the function's.
        func = getattr(self.func, "func", self.func)
        doc = (func.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else self.name

    def __call__(self, subject: S) -> None:
        try:
            self.func(subject)
        except AssertionError as exc:
            raise AssertionError(f"{self.name}: {_explain(exc)}") from exc
        except Exception as exc:
            raise AssertionError(f"{self.name}: raised {type(exc).__name__}: {exc}") from exc

    def __repr__(self) -> str:
        return f"Check({self.name})"


def check(func: Callable[[S], None]) -> Check[S]:
    """Make ``func`` a :class:`Check` named after it."""
    return Check(func.__name__, func)


def slow_check(func: Callable[[S], None]) -> Check[S]:
    """Make ``func`` a slow :class:`Check` named after it."""
    return Check(func.__name__, func, slow=True)


def _explain(exc: AssertionError) -> str:
    """The assertion's message, or else the statement that failed and where."""
    if str(exc):
        return str(exc)
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return "assertion failed"
    last = frames[-1]
    return f"{last.line} ({last.filename.rsplit('/', 1)[-1]}:{last.lineno})"


def run_checks(checks: Iterable[Check[S]], subject: Callable[[], S], what: str) -> None:
    """Run every check, each on a fresh ``subject()``, and report every failure at once.

    Raises:
        AssertionError: One or more checks failed; the message names each with its reason.
    """
    failures: list[AssertionError] = []
    total = 0
    for one in checks:
        total += 1
        try:
            one(subject())
        except AssertionError as exc:
            failures.append(exc)
    if failures:
        lines = "\n".join(f"- {exc}" for exc in failures)
        raise AssertionError(
            f"{len(failures)} of {total} {what} checks failed:\n{lines}"
        ) from failures[0]


@contextmanager
def raises(
    expected: type[BaseException] | tuple[type[BaseException], ...], match: str | None = None
) -> Iterator[None]:
    """Assert that the block raises ``expected`` (with a message matching ``match``).

    ``pytest.raises`` without pytest, which the checks must not need at run time.
    """
    try:
        yield
    except expected as exc:
        if match is not None and not re.search(match, str(exc)):
            raise AssertionError(
                f"{type(exc).__name__}({str(exc)!r}) does not match {match!r}"
            ) from exc
        return
    names = (
        expected.__name__
        if isinstance(expected, type)
        else " or ".join(e.__name__ for e in expected)
    )
    raise AssertionError(f"did not raise {names}")
