from __future__ import annotations

import os
import random
import time
from zoneinfo import ZoneInfo

import pytest

from avaya_source.mock.responses import hostile
from avaya_source.xmlsafe import XmlDocumentError, parse_search

HCM = ZoneInfo("Asia/Ho_Chi_Minh")

GOOD = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<results>'
    b'<result inum="1000000000000010"><field name="startedat">2026-11-25T10:00:00+07:00</field><field name="duration">106</field>'
    b'<field name="agents">1234 (agent1234.247)</field><field name="otherparties">0912345678</field>'
    b'<field name="services">CSKH_VI</field><field name="skills">101</field><field name="switchcallid">0012</field></result>'
    b'<result inum="1000000000000020"><field name="startedat">25/11/26 10:01:00</field><field name="duration"></field></result>'
    b'<result inum="1000000000000030"><field name="duration">5</field></result>'
    b'<result inum="bad/inum"><field name="startedat">25/11/26 10:01:00</field><field name="duration">5</field></result>'
    b'<result inum="1000000000000040"><field name="startedat">25/11/26 10:01:00</field><field name="duration">x</field></result>'
    b"</results>"
)


def test_good_and_bad_records_are_separated_with_reasons() -> None:
    page = parse_search(GOOD, HCM)
    assert page.result_count == 5
    assert [r.call_id for r in page.recordings] == ["1000000000000010", "1000000000000020"]
    assert page.recordings[0].raw_agent == "1234 (agent1234.247)"
    assert page.recordings[1].duration is None  # in progress, not rejected
    assert sorted(r.reason for r in page.rejected) == ["bad_call_id", "bad_duration", "missing_field"]


def test_contacts_layout_gives_inums() -> None:
    body = (
        b'<results><result contactid="10811843526838"><field name="startedat">25/11/26 10:01:00</field>'
        b'<field name="switchcallid">0042</field><field name="inums">1972002578000020,1972002578000021</field></result></results>'
    )
    page = parse_search(body, HCM)
    assert page.contacts[0].inums == ("1972002578000020", "1972002578000021")
    assert page.contacts[0].switch_call_id == "0042"


def test_xxe_is_refused_and_no_file_is_read(tmp_path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    body = (
        f'<?xml version="1.0"?><!DOCTYPE results [<!ENTITY xxe SYSTEM "file://{secret}">]>'
        '<results><result inum="1"><field name="startedat">&xxe;</field></result></results>'
    ).encode()
    with pytest.raises(XmlDocumentError) as info:
        parse_search(body, HCM)
    assert info.value.reason == "dtd_forbidden"
    assert "TOP-SECRET" not in str(info.value)


def test_billion_laughs_is_refused_fast() -> None:
    started = time.process_time()
    with pytest.raises(XmlDocumentError) as info:
        parse_search(hostile("billion_laughs", GOOD, random.Random(0)), HCM)
    assert info.value.reason == "dtd_forbidden"
    assert time.process_time() - started < 5  # generous: expansion would take minutes and gigabytes


@pytest.mark.parametrize(
    ("mode", "reason"),
    [("truncated", "malformed_xml"), ("wrong_encoding", "bad_encoding"), ("junk", None), ("malformed", "malformed_xml")],
)
def test_broken_documents_raise_a_document_error(mode: str, reason: str | None) -> None:
    body = hostile(mode, GOOD, random.Random(1))
    with pytest.raises(XmlDocumentError) as info:
        parse_search(body, HCM)
    if reason:
        assert info.value.reason == reason
    else:
        assert info.value.reason in ("malformed_xml", "bad_encoding")


def test_size_cap_and_unexpected_root() -> None:
    with pytest.raises(XmlDocumentError) as info:
        parse_search(b"<results>" + os.urandom(10) + b"</results>", HCM, max_bytes=8)
    assert info.value.reason == "too_large"
    with pytest.raises(XmlDocumentError) as info:
        parse_search(b"<html><body>login</body></html>", HCM)
    assert info.value.reason == "unexpected_root"


def test_oversized_field_rejects_only_that_record() -> None:
    body = (
        b'<results><result inum="1"><field name="startedat">25/11/26 10:01:00</field><field name="duration">1</field>'
        b'<field name="agents">' + b"A" * 10000 + b'</field></result><result inum="2"><field name="startedat">25/11/26 10:01:00'
        b'</field><field name="duration">1</field></result></results>'
    )
    page = parse_search(body, HCM)
    assert [r.call_id for r in page.recordings] == ["2"]
    assert page.rejected[0].reason == "bad_field" and page.rejected[0].inum == "1"
