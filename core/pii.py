"""Customer numbers (PII) kept out of storage, logs and API answers: a keyed hash for joins, masks for people.

The clear number exists only in the recorder's own record (calls.raw, bounded retention); everything downstream carries the
keyed hash, which groups a customer's calls without revealing the number to anyone who lacks the key.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Any

KEY_PREFIX = "hk1:"
# Fields that hold a customer's number in the records CCAS moves (raw recorder record, enriched call, dead letters).
PII_FIELDS = frozenset({"other_party", "other_parties", "customer_number", "otherparties"})
_DIGITS = re.compile(r"\d")


def normalise_number(number: str) -> str:
    """Digits only (a leading + kept), so '+84 90-123' and '+8490123' are one customer."""
    text = number.strip()
    digits = "".join(_DIGITS.findall(text))
    return ("+" if text.startswith("+") else "") + digits


def customer_key(number: str | None, key: bytes) -> str | None:
    """HMAC-SHA256 of the normalised number under `key`, as 'hk1:' + 32 hex characters; None for no number."""
    if not number or not normalise_number(number).lstrip("+"):
        return None
    if len(key) < 16:
        raise ValueError("the PII hashing key must be at least 16 bytes (CCAS_PII_HMAC_KEY)")
    digest = hmac.new(key, normalise_number(number).encode(), hashlib.sha256).hexdigest()
    return KEY_PREFIX + digest[:32]


def mask_number(number: str) -> str:
    """Every digit but the last two replaced by '*': enough for a person to tell two numbers apart, not to call one."""
    digits = [index for index, char in enumerate(number) if char.isdigit()]
    hidden = set(digits[:-2]) if len(digits) > 2 else set(digits)
    return "".join("*" if index in hidden else char for index, char in enumerate(number))


def mask_payload(value: Any) -> Any:
    """A copy of a JSON-like value with every PII field's text masked (recursively through dicts and lists)."""
    if isinstance(value, dict):
        return {key: (mask_number(item) if key.lower() in PII_FIELDS and isinstance(item, str) else mask_payload(item))
                for key, item in value.items()}
    if isinstance(value, list):
        return [mask_payload(item) for item in value]
    return value
