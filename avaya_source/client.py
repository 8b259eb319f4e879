"""The recorder's Search API for the poller: windows of recordings as safe, parsed pages (transport: core.recorder)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from avaya_source.records import DEFAULT_TZ
from avaya_source.xmlsafe import SearchPage, XmlDocumentError, parse_search
from core.recorder import (  # noqa: F401 - the recorder's errors and credentials are part of this client's API
    AvayaBadResponse,
    AvayaError,
    AvayaRejected,
    AvayaUnavailable,
    Credentials,
    RecorderHttp,
    ReplayStream,
)

log = logging.getLogger(__name__)

LAYOUT_SEGMENTS = "AvayaSegment"
LAYOUT_CONTACTS = "SearchLayout60"


class AvayaClient(RecorderHttp):
    """Search and Replay against `base_url` (e.g. http://127.0.0.1:19024); one keep-alive session per client."""

    def __init__(self, base_url: str, credentials: Credentials, *, tz: ZoneInfo | None = None, **transport: Any) -> None:
        super().__init__(base_url, credentials, **transport)
        # The caller passes CCAS_AVAYA_TZ from its settings (core.settings.RecorderSettings); no second lookup here.
        self.tz = tz or ZoneInfo(DEFAULT_TZ)

    # -- API -------------------------------------------------------------------------------------------------------------

    def search_params(self, start: datetime, end: datetime, layout: str) -> dict[str, str]:
        """ACR `operator_startedat=9` (between) with dates and times in the recorder's zone."""
        lo, hi = start.astimezone(self.tz), end.astimezone(self.tz)
        return {
            "command": "search",
            "layout": layout,
            "operator_startedat": "9",
            "param1_startedat": lo.strftime("%d/%m/%y"),
            "param2_startedat": lo.strftime("%H:%M:%S"),
            "param3_startedat": hi.strftime("%d/%m/%y"),
            "param4_startedat": hi.strftime("%H:%M:%S"),
        }

    def search(self, start: datetime, end: datetime, layout: str = LAYOUT_SEGMENTS) -> SearchPage:
        """Recordings (or contacts) whose startedat lies in [start, end] at one-second resolution."""
        if start.tzinfo is None or end.tzinfo is None:
            raise ValueError("search window bounds must be timezone-aware")
        response = self._get(self.search_params(start, end, layout), stream=True)
        body = self._read_capped(response)
        try:
            page = parse_search(body, self.tz, self.max_response_bytes)
        except XmlDocumentError as exc:
            raise AvayaBadResponse(exc.reason, exc.detail) from None
        for bad in page.rejected:
            log.warning("avaya search: rejected result inum=%s reason=%s: %s", bad.inum, bad.reason, bad.detail)
        return page


def utcnow() -> datetime:
    return datetime.now(UTC)
