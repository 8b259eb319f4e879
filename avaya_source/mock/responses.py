"""Search answers as ACR writes them, and the broken or hostile answers the fault injection serves instead."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from datetime import datetime
from xml.sax.saxutils import escape, quoteattr
from zoneinfo import ZoneInfo

from avaya_source.mock.schedule import Segment

HOSTILE_MODES = ("xxe", "billion_laughs", "truncated", "wrong_encoding", "junk", "malformed")


@dataclass(frozen=True)
class Rendering:
    tz: ZoneInfo
    startedat_format: str = "iso"  # iso (with offset) | naive (recorder local, ISO) | utc (Z) | ddmmyy
    corrupt_ratio: float = 0.0  # share of inums ALWAYS served with a broken record (deterministic by inum)
    corrupt_seed: int = 0
    field_case: str = "lower"  # lower (as most ACR versions write) | mixed (names in varied case, names and values padded)


def format_startedat(moment: datetime, rendering: Rendering) -> str:
    local = moment.astimezone(rendering.tz)
    if rendering.startedat_format == "naive":
        return local.replace(tzinfo=None).isoformat(timespec="milliseconds")
    if rendering.startedat_format == "utc":
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if rendering.startedat_format == "ddmmyy":
        return local.strftime("%d/%m/%y %H:%M:%S")
    return local.isoformat(timespec="milliseconds")


def is_corrupt(inum: str, rendering: Rendering) -> bool:
    if rendering.corrupt_ratio <= 0:
        return False
    digest = hashlib.sha256(f"{rendering.corrupt_seed}:{inum}".encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 < rendering.corrupt_ratio


CORRUPTIONS = ("missing_startedat", "bad_startedat", "bad_duration", "bad_inum", "missing_inum")


def _corruption(inum: str) -> str:
    return CORRUPTIONS[int(hashlib.sha256(inum.encode()).hexdigest(), 16) % len(CORRUPTIONS)]


FIELD_CASES = ("lower", "mixed")


def _variant(text: str, key: str, forms: int) -> int:
    return int(hashlib.sha256(f"{key}:{text}".encode()).hexdigest(), 16) % forms


def _field_name(name: str, key: str, rendering: Rendering) -> str:
    """The field name as this recorder writes it; `mixed` varies case and padding per result (deterministic by inum)."""
    if rendering.field_case != "mixed":
        return name
    forms = (name.upper(), name.capitalize(), f" {name} ", f"\t{name.title()}\n", name[:1] + name[1:].upper(), name)
    return forms[_variant(name, key, len(forms))]


def _padded(value: str, key: str, rendering: Rendering) -> str:
    if rendering.field_case != "mixed" or not value:
        return value
    return ("", " ", "  ", "\n ")[_variant(value, key, 4)] + value + ("", " ", "\t")[_variant(value, key + "/", 3)]


def _field(name: str, value: str, key: str, rendering: Rendering) -> str:
    shown = _field_name(name, key, rendering)
    return f"<field name={quoteattr(shown)}>{escape(_padded(value, key + name, rendering))}</field>"


def _attribute(name: str, value: str, rendering: Rendering) -> str:
    return f" {name}={quoteattr(_padded(value, name + value, rendering))}"


def segment_xml(segment: Segment, rendering: Rendering, *, in_progress: bool = False) -> str:
    fields = {
        "startedat": format_startedat(segment.started_at, rendering),
        "duration": "" if in_progress else segment.duration_field,
        "agents": segment.agents_field,
        "otherparties": segment.other_party,
        "services": segment.service,
        "skills": segment.skill,
        "switchcallid": segment.switch_call_id,
    }
    inum_attr = _attribute("inum", segment.inum, rendering)
    if is_corrupt(segment.inum, rendering):
        kind = _corruption(segment.inum)
        if kind == "missing_startedat":
            del fields["startedat"]
        elif kind == "bad_startedat":
            fields["startedat"] = "31/02/26 25:61:00"
        elif kind == "bad_duration":
            fields["duration"] = "abc"
        elif kind == "bad_inum":
            inum_attr = f" inum={quoteattr(segment.inum + '/../../etc/passwd')}"
        else:
            inum_attr = ""
    body = "".join(_field(name, value, segment.inum, rendering) for name, value in fields.items())
    return f"<result{inum_attr}>{body}</result>"


def contact_xml(segments: list[Segment], rendering: Rendering) -> str:
    first = segments[0]
    total = sum(s.duration_s for s in segments)
    fields = {
        "startedat": format_startedat(first.started_at, rendering),
        "duration": str(max(1, round(total))),
        "agents": ", ".join(dict.fromkeys(s.agents_field for s in segments)),
        "otherparties": first.other_party,
        "services": first.service,
        "skills": first.skill,
        "switchcallid": first.switch_call_id,
        "inums": ",".join(s.inum for s in segments),
    }
    body = "".join(_field(name, value, first.contact_id, rendering) for name, value in fields.items())
    return f"<result{_attribute('contactid', first.contact_id, rendering)}>{body}</result>"


def document(results: list[str]) -> bytes:
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<results>' + "".join(results) + "</results>").encode()


def hostile(mode: str, good: bytes, rng: random.Random) -> bytes:
    """A broken or hostile answer; `good` is what would have been served (some modes damage it)."""
    if mode == "xxe":
        return (
            b'<?xml version="1.0"?>\n<!DOCTYPE results [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
            b'<results><result inum="9990001"><field name="startedat">&xxe;</field>'
            b'<field name="duration">10</field></result></results>'
        )
    if mode == "billion_laughs":
        entities = ['<!ENTITY lol0 "lol">'] + [f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10}">' for i in range(1, 10)]
        return (
            '<?xml version="1.0"?>\n<!DOCTYPE results [' + "".join(entities) + ']>\n<results><result inum="9990002">'
            '<field name="agents">&lol9;</field></result></results>'
        ).encode()
    if mode == "truncated":
        return good[: max(10, len(good) // 2)]
    if mode == "wrong_encoding":
        # Declared UTF-8, a Vietnamese name in Windows-1258/Latin bytes: what a misconfigured recorder export produces.
        marker = b'name="agents">'
        if marker in good:
            return good.replace(marker, marker + b"Nguy\xean V\xe3n ", 1)
        return b'<?xml version="1.0" encoding="UTF-8"?>\n<results>Nguy\xean</results>'
    if mode == "junk":
        return bytes(rng.getrandbits(8) for _ in range(4096)) * (5 * 1024 * 1024 // 4096)
    if mode == "malformed":
        return good.replace(b"</result>", b"</reslt>", 1) if b"</result>" in good else b"<results><result></results>"
    raise ValueError(f"unknown hostile mode {mode!r}")
