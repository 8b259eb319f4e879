"""The contract of every Kafka topic: its JSON Schema and the declarative topic list, with one validator for both.

`validate(topic, payload)` raises `SchemaError` naming the failing field, so a dead letter or a log line says what was wrong.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import best_match

from schemas.contracts import CALL_ID_PATTERN, is_valid_call_id  # noqa: F401 - re-exported: schemas.is_valid_call_id

SCHEMA_DIR = Path(__file__).resolve().parent

_format_checker = FormatChecker()


@_format_checker.checks("date-time", raises=ValueError)
def _is_aware_iso8601(value: object) -> bool:
    # jsonschema checks date-time only when an optional package is installed; ours is explicit and demands a time zone.
    if not isinstance(value, str):
        return True
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError(f"{value!r} has no time zone offset")
    return True


class SchemaError(ValueError):
    """A payload broke its topic's schema; `field` is the JSON path of the failing field ('' for the whole value)."""

    def __init__(self, topic: str, field: str, message: str) -> None:
        self.topic = topic
        self.field = field
        super().__init__(f"{topic}: field {field or '(value)'!r}: {message}")


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    retention_days: int
    schema: str
    dead_letter: str | None
    config: dict[str, str]

    @property
    def retention_ms(self) -> int:
        return self.retention_days * 24 * 3600 * 1000


@cache
def topics() -> dict[str, TopicSpec]:
    """The declared topics (schemas/topics.yaml), by name."""
    document = yaml.safe_load((SCHEMA_DIR / "topics.yaml").read_text())
    defaults = {key: str(value) for key, value in document.get("defaults", {}).items()}
    specs = {}
    for name, spec in document["topics"].items():
        config = {**defaults, "retention.ms": str(spec["retention_days"] * 24 * 3600 * 1000)}
        specs[name] = TopicSpec(name, int(spec["partitions"]), int(spec["retention_days"]), spec["schema"],
                                spec.get("dead_letter"), config)
    return specs


@cache
def schema_for(topic: str) -> dict[str, Any]:
    if topic not in topics():
        raise KeyError(f"unknown topic {topic!r}; declared: {', '.join(topics())}")
    return json.loads((SCHEMA_DIR / topics()[topic].schema).read_text())


@cache
def _validator(topic: str) -> Draft202012Validator:
    schema = schema_for(topic)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=_format_checker)


def _field_of(error: Any) -> str:
    path = "/".join(str(part) for part in error.absolute_path)
    if error.validator == "required" and isinstance(error.instance, dict):
        missing = [field for field in error.validator_value if field not in error.instance]
        if missing:
            return f"{path}/{missing[0]}" if path else missing[0]
    return path


def _message_of(error: Any) -> str:
    # jsonschema's message quotes the value. A field the schema marks "x-pii" may hold a customer's number, and this message
    # reaches log lines (the poller's) and dead letters: say what the value broke, never what it is.
    if isinstance(error.schema, dict) and error.schema.get("x-pii"):
        return f"value withheld (personal data): fails {error.validator} {json.dumps(error.validator_value)}"
    return error.message


def validate(topic: str, payload: Any) -> None:
    """Raise SchemaError (naming the field) unless payload is a valid value for topic."""
    error = best_match(_validator(topic).iter_errors(payload))
    if error is not None:
        raise SchemaError(topic, _field_of(error), _message_of(error))

