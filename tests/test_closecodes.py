from __future__ import annotations

import pytest
from websockets.frames import EXTERNAL_CLOSE_CODES, OK_CLOSE_CODES, CloseCode

from wssim.course import closecodes


def test_the_codes_allowed_on_the_wire_are_the_ones_websockets_accepts() -> None:
    on_wire = {info.code for info in closecodes.CLOSE_CODES if info.on_wire != "never"}
    assert on_wire == set(EXTERNAL_CLOSE_CODES)


def test_ok_codes_follow_websockets() -> None:
    assert {info.code for info in closecodes.CLOSE_CODES if info.ok} == set(OK_CLOSE_CODES)


def test_names_are_websockets_names() -> None:
    named = {info.code: info.name for info in closecodes.CLOSE_CODES if info.name}
    assert named == {code.value: code.name for code in CloseCode}
    assert closecodes.CLOSE_CODES[4].name == ""  # 1004 is reserved: no name


@pytest.mark.parametrize(
    ("code", "meaning"),
    [
        (1000, "normal closure: the purpose of the connection is fulfilled"),
        (999, "not used"),
        (1016, "unassigned (must not be sent)"),
        (3001, "registered with IANA for libraries and frameworks"),
        (4000, "private use: for applications, by agreement between both ends"),
    ],
)
def test_describe(code: int, meaning: str) -> None:
    assert closecodes.describe(code) == meaning


def test_describe_refuses_codes_out_of_range() -> None:
    with pytest.raises(ValueError, match="code must be an integer from 0 to 4999, got 5000"):
        closecodes.describe(5000)


def test_table_has_a_row_per_code() -> None:
    table = closecodes.table()
    assert len(table) == 16
    assert table.rows[6][:5] == (
        "1006", "ABNORMAL_CLOSURE", "closed without any close frame (reported locally)",
        "never", "ConnectionClosedError",
    )  # fmt: skip
