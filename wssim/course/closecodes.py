"""The WebSocket close codes, as data: what each means, and whether it may go on the wire.

Sources: RFC 6455 section 7.4.1 (1000-1011, 1015) and 7.4.2 (ranges); the IANA "WebSocket
Close Code Number Registry" (1012-1014). The names are websockets' ``CloseCode`` names, and
"OK" follows websockets: a connection whose close frames both carry 1000, 1001 or 1005
ends with ``ConnectionClosedOK``, anything else with ``ConnectionClosedError``.
"""

from __future__ import annotations

from dataclasses import dataclass

from websockets.frames import OK_CLOSE_CODES, CloseCode

from wssim.trace.events import Table

__all__ = ["CLOSE_CODES", "RANGES", "CloseCodeInfo", "describe", "table"]


@dataclass(frozen=True, slots=True)
class CloseCodeInfo:
    """One close code.

    Attributes:
        code: the number.
        name: websockets' name for it (``CloseCode.NORMAL_CLOSURE``...), or "" if none.
        meaning: what it says, in a few words.
        on_wire: "yes" if an endpoint may send it in a close frame; "never" for codes that
            are only reported locally; "client only" for 1010.
        ok: websockets counts it as a normal closure (``ConnectionClosedOK``).
        source: where it is defined.
    """

    code: int
    name: str
    meaning: str
    on_wire: str
    ok: bool
    source: str


def _info(code: int, meaning: str, on_wire: str, source: str) -> CloseCodeInfo:
    try:
        name = CloseCode(code).name
    except ValueError:
        name = ""
    return CloseCodeInfo(code, name, meaning, on_wire, code in OK_CLOSE_CODES, source)


_RFC = "RFC 6455, 7.4.1"
_IANA = "IANA registry"

CLOSE_CODES: tuple[CloseCodeInfo, ...] = (
    _info(1000, "normal closure: the purpose of the connection is fulfilled", "yes", _RFC),
    _info(1001, "going away: a server shutting down, a browser leaving the page", "yes", _RFC),
    _info(1002, "protocol error", "yes", _RFC),
    _info(1003, "unsupported data (for example binary where only text is accepted)", "yes", _RFC),
    _info(1004, "reserved", "never", _RFC),
    _info(1005, "no status code in the close frame (reported locally)", "never", _RFC),
    _info(1006, "closed without any close frame (reported locally)", "never", _RFC),
    _info(1007, "invalid payload data (for example text that is not UTF-8)", "yes", _RFC),
    _info(1008, "policy violation", "yes", _RFC),
    _info(1009, "message too big", "yes", _RFC),
    _info(1010, "the client needs an extension the server did not agree to", "client only", _RFC),
    _info(1011, "unexpected condition (websockets: also keepalive timeout)", "yes", _RFC),
    _info(1012, "service restart", "yes", _IANA),
    _info(1013, "try again later", "yes", _IANA),
    _info(1014, "bad gateway", "yes", _IANA),
    _info(1015, "TLS handshake failure (reported locally)", "never", _RFC),
)  # fmt: skip
"""Every code defined by RFC 6455 and the IANA registry, in order."""

RANGES: tuple[tuple[int, int, str], ...] = (
    (0, 999, "not used"),
    (1000, 2999, "defined by the protocol and its extensions"),
    (3000, 3999, "registered with IANA for libraries and frameworks"),
    (4000, 4999, "private use: for applications, by agreement between both ends"),
)
"""Ranges of codes (RFC 6455, 7.4.2)."""

_BY_CODE = {info.code: info for info in CLOSE_CODES}


def describe(code: int) -> str:
    """A short description of any code: its meaning, or the range it falls in.

    Raises:
        ValueError: if ``code`` is not between 0 and 4999.
    """
    if not isinstance(code, int) or not 0 <= code <= 4999:
        raise ValueError(f"code must be an integer from 0 to 4999, got {code!r}")
    info = _BY_CODE.get(code)
    if info is not None:
        return info.meaning
    for low, high, meaning in RANGES:
        if low <= code <= high:
            return meaning if low != 1000 else "unassigned (must not be sent)"
    raise AssertionError("unreachable: the ranges cover 0-4999")  # pragma: no cover


def table() -> Table:
    """The close codes as a text table.

    Columns: the code, websockets' name, its meaning, whether it may be sent on the wire,
    the exception websockets raises when both close frames carry it, and the source.
    """
    return Table(
        ("code", "name", "meaning", "on the wire", "websockets raises", "source"),
        [(i.code, i.name, i.meaning, i.on_wire, _exception(i.ok), i.source) for i in CLOSE_CODES],
    )


def _exception(ok: bool) -> str:
    return "ConnectionClosedOK" if ok else "ConnectionClosedError"
