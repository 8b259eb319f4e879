"""Dead letters as shown to people: customer numbers masked (core.pii) unless an admin asks for the full record.

A dead letter's `payload` is the original message: a decoded JSON object, or the raw text when it was not JSON (sometimes
JSON text all the same). JSON is masked field by field (core.pii.mask_payload, by field name) and re-serialised when it came
as text; other text has every run of 7 or more digits masked but for its last two digits, since a number there has no field
name to find it by. `error` and `stack` are free text that may quote the payload, so they get the digit-run mask too, with
the record's own call_id left readable (an inum is a digit run as well, and the operator needs it).
"""

from __future__ import annotations

import json
import re
from typing import Any

from core.pii import mask_number, mask_payload

DIGIT_RUN = re.compile(r"\d{7,}")
FREE_TEXT_FIELDS = ("error", "stack")


def mask_text(text: str, keep: frozenset[str] = frozenset()) -> str:
    """Every run of 7+ digits masked but for its last two digits (runs listed in `keep` left as they are)."""
    return DIGIT_RUN.sub(lambda run: run.group() if run.group() in keep else mask_number(run.group()), text)


def mask_payload_text(text: str) -> str:
    """Payload text: JSON (an object or a list) masked by field and re-serialised, anything else by digit runs."""
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict | list):
        return json.dumps(mask_payload(parsed))
    # Not structured JSON: a bare JSON number or string may be the customer's number itself.
    return mask_text(text)


def mask_record(value: dict[str, Any]) -> dict[str, Any]:
    """A copy of one dead-letter record (dlq.DeadLetterRecord.full()) fit for a viewer."""
    masked: dict[str, Any] = mask_payload(value)
    payload = masked.get("payload")
    if isinstance(payload, str):
        masked["payload"] = mask_payload_text(payload)
    call_id = masked.get("call_id")
    keep = frozenset({call_id}) if isinstance(call_id, str) else frozenset()
    for name in FREE_TEXT_FIELDS:
        if isinstance(masked.get(name), str):
            masked[name] = mask_text(masked[name], keep)
    return masked


def mask_summary(row: dict[str, Any]) -> dict[str, Any]:
    """A listing row (dlq.DeadLetterRecord.summary() and its state): its error line is the one free text in it."""
    call_id = row.get("call_id")
    keep = frozenset({call_id}) if isinstance(call_id, str) else frozenset()
    return {**row, "error": mask_text(row["error"], keep)} if isinstance(row.get("error"), str) else row
