"""Search-response XML → recordings, parsed with lxml configured so hostile input cannot hurt the poller.

Two levels of failure: a document that cannot be trusted as a whole (DTD/entities, too large, not well formed, wrong encoding)
raises `XmlDocumentError` so the caller retries the window instead of publishing a partial answer; a single bad `<result>`
becomes a `Rejected` with its reason and the rest of the document is still used.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from lxml import etree

from avaya_source.records import (
    Contact,
    RecordError,
    Recording,
    Rejected,
    check_call_id,
    field_key,
    normalized,
    recording_from_fields,
    split_inums,
)

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 8 * 1024 * 1024
MAX_RESULTS = 100_000
MAX_FIELD_CHARS = 4096
# An ACR answer never has a DTD; entities can only be declared in one, so refusing any DOCTYPE up front kills XXE and
# billion-laughs before libxml2 sees them (the parser flags below are the second line of defence).
_DOCTYPE = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)


class XmlDocumentError(ValueError):
    """The whole response is unusable; `reason` is a short metric label."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass
class SearchPage:
    """What one search answered: good recordings, contacts (SearchLayout60) and rejected results."""

    recordings: list[Recording] = field(default_factory=list)
    contacts: list[Contact] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    result_count: int = 0  # <result> elements seen, good or bad: compared with the recorder's cap


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
        collect_ids=False,
    )


def parse_document(body: bytes, max_bytes: int = DEFAULT_MAX_BYTES) -> etree._Element:
    if len(body) > max_bytes:
        raise XmlDocumentError("too_large", f"{len(body)} bytes > cap {max_bytes}")
    if _DOCTYPE.search(body[:65536]) or _DOCTYPE.search(body):
        raise XmlDocumentError("dtd_forbidden", "DOCTYPE/ENTITY declarations are refused (XXE / entity expansion)")
    try:
        root = etree.fromstring(body, parser=_parser())
    except etree.XMLSyntaxError as exc:
        reason = "bad_encoding" if "encoding" in str(exc).lower() or "utf-8" in str(exc).lower() else "malformed_xml"
        raise XmlDocumentError(reason, str(exc)[:200]) from None
    except (ValueError, LookupError) as exc:  # e.g. an unknown encoding name in the XML declaration
        raise XmlDocumentError("bad_encoding", str(exc)[:200]) from None
    if root is None:
        raise XmlDocumentError("malformed_xml", "empty document")
    if _tag(root) != "results":
        raise XmlDocumentError("unexpected_root", f"<{str(root.tag)[:40]}> instead of <results>")
    return root


def _tag(element: etree._Element) -> str:
    return field_key(str(element.tag))


def _attribute(element: etree._Element, name: str) -> str | None:
    """An attribute by name in any letter case, its value trimmed (ACR versions differ in both)."""
    for key, value in element.attrib.items():
        if field_key(str(key)) == name:
            return value.strip()
    return None


def _fields(result: etree._Element) -> dict[str, str]:
    """The result's fields keyed by lower-case, trimmed name (records.field_key)."""
    fields: dict[str, str] = {}
    for child in result:
        if _tag(child) != "field":
            continue
        name = field_key(_attribute(child, "name") or "")
        if not name:
            raise RecordError("bad_field", "<field> without a name")
        text = child.text or ""
        if len(text) > MAX_FIELD_CHARS:
            raise RecordError("bad_field", f"field {name[:40]!r} is {len(text)} characters")
        if name in fields:
            raise RecordError("bad_field", f"field {name[:40]!r} repeated")
        fields[name] = text
    return normalized(fields)


def parse_search(body: bytes, tz: ZoneInfo, max_bytes: int = DEFAULT_MAX_BYTES) -> SearchPage:
    """Search answer bytes → SearchPage; raises XmlDocumentError for a document that cannot be trusted at all."""
    root = parse_document(body, max_bytes)
    page = SearchPage()
    for result in root:
        if _tag(result) != "result":
            continue
        page.result_count += 1
        if page.result_count > MAX_RESULTS:
            raise XmlDocumentError("too_many_results", f"more than {MAX_RESULTS} results")
        inum = _attribute(result, "inum")
        try:
            fields = _fields(result)
            contact_id = _attribute(result, "contactid")
            if contact_id is not None:
                page.contacts.append(_contact(contact_id, fields))
            else:
                page.recordings.append(recording_from_fields(inum, fields, tz))
        except RecordError as exc:
            page.rejected.append(Rejected(exc.reason, exc.detail, inum[:40] if inum else None))
    return page


def _contact(contact_id: str | None, fields: dict[str, str]) -> Contact:
    cid = check_call_id(contact_id)
    inums = split_inums(fields.get("inums", ""))
    if not inums:
        raise RecordError("missing_field", f"contact {cid} has no inums")
    return Contact(cid, fields.get("switchcallid", "").strip(), tuple(check_call_id(i) for i in inums))
