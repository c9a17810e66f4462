"""Personal data in a table: columns declared ``pii: true`` in the contract, and columns that
look like e-mail addresses, phone numbers or payment card numbers (Luhn-checked).

The detector is deliberately simple: a text column is taken for PII of a kind when at least
half of its non-null values (of a sample) match that kind. It reports, it never blocks; the
prediction log then stores such columns hashed (:func:`hash_value`, salted SHA-256) or not
at all, by the project's policy (see ``opsloop.serve.base.PiiColumnsView``).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from collections.abc import Iterable

    import pandas as pd

__all__ = ["PiiColumn", "PiiKind", "detect_pii", "luhn_ok", "pii_kind"]

PiiKind = Literal["email", "phone", "card", "declared"]

_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}")
# International or national numbers: an optional +, then 9 to 15 digits with the usual
# separators (spaces, dashes, dots, brackets).
_PHONE = re.compile(r"\+?\(?\d[\d\s().\-]{7,18}\d")
_CARD = re.compile(r"\d(?:[ \-]?\d){12,18}")
_SAMPLE = 1000
_SHARE = 0.5


class PiiColumn(BaseModel):
    """A column holding personal data.

    Attributes:
        column: Its name.
        kind: ``declared`` (tagged ``pii: true``) or what the detector took it for.
        share: Share of the sampled non-null values that matched (1.0 for declared columns).
    """

    model_config = ConfigDict(frozen=True)

    column: str
    kind: PiiKind
    share: float = 1.0


def luhn_ok(digits: str) -> bool:
    """The Luhn checksum of a card number (digits only) holds."""
    if not digits.isdigit():
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def pii_kind(value: object) -> PiiKind | None:
    """What kind of personal data one value is, if any."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if _EMAIL.fullmatch(text):
        return "email"
    if _CARD.fullmatch(text):
        digits = re.sub(r"\D", "", text)
        if 13 <= len(digits) <= 19 and luhn_ok(digits):
            return "card"
    if _PHONE.fullmatch(text):
        digits = re.sub(r"\D", "", text)
        if 9 <= len(digits) <= 15:
            return "phone"
    return None


def detect_pii(df: pd.DataFrame, *, declared: Iterable[str] = ()) -> list[PiiColumn]:
    """The columns of ``df`` that hold personal data: ``declared`` ones first, then the
    text columns the detector recognises."""
    named = [c for c in declared if c in df.columns]
    found = [PiiColumn(column=c, kind="declared") for c in named]
    for name in df.columns:
        if name in named or not _is_text(df[name]):
            continue
        values = df[name].dropna().head(_SAMPLE)
        if values.empty:
            continue
        kinds = [pii_kind(v) for v in values.astype(str)]
        for kind in ("email", "card", "phone"):
            share = kinds.count(kind) / len(kinds)
            if share >= _SHARE:
                found.append(PiiColumn(column=str(name), kind=kind, share=round(share, 4)))
                break
    return found


def _is_text(series: pd.Series) -> bool:
    return series.dtype.kind in "OSU" or str(series.dtype) in ("string", "category")
