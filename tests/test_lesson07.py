"""The capstone's check: a pass with the scorecard, or the scorecard with a hint per line."""

from __future__ import annotations

import ast
import inspect
import json
from dataclasses import replace
from pathlib import Path

import pytest

from wssim.course import capstone_examples
from wssim.course.capstone_examples import (
    NaiveClient,
    ResilientClient,
    naive_handler,
    resilient_handler,
)
from wssim.course.exercises import lesson07
from wssim.lab import chaos
from wssim.lab.scorecard import Line, Scorecard


def test_the_reference_passes_with_its_scorecard() -> None:
    feedback = lesson07.resilient(ResilientClient, resilient_handler)
    assert feedback.passed
    text = repr(feedback)
    assert text.startswith("✓ Correct: every line of the scorecard passes")
    assert "messages lost              0 of 3,240" in text


def test_the_naive_version_gets_a_hint_for_each_failing_line() -> None:
    feedback = lesson07.resilient(NaiveClient, naive_handler)
    assert not feedback.passed
    text = repr(feedback)
    assert text.startswith("✗ Not yet: 4 lines of the scorecard fail:")
    hints = [line for line in text.splitlines() if line.startswith("- ")]
    assert [hint[:40] for hint in hints] == [
        "- 616 events never reached their user: o",
        "- 52 messages that users wrote never rea",
        "- write() raised 20 times: it is called ",
        "- 41 connection attempts reached the ser",
        "- the server still held 40 resources aft",
        "- the handler failed on bad input: catch",
    ]
    assert "subscribe with the id of the last event received" in text
    assert "close the subscription in a finally clause" in text


def test_a_half_fixed_version_is_told_what_is_left() -> None:
    # The resilient handler behind the naive client: the server side is right, so only
    # the client's lines fail.
    feedback = lesson07.resilient(NaiveClient, resilient_handler)
    text = repr(feedback)
    assert "resources" not in text.split("\n- ", 1)[1]
    assert "handler failed" not in text


class Broken:
    def __init__(self, user: object) -> None:
        self.user = user

    async def write(self, message: object) -> None:
        pass

    async def run(self) -> None:
        raise RuntimeError("oops")


@pytest.mark.parametrize(
    ("client", "handler", "hint"),
    [
        (ResilientClient(None), resilient_handler, "pass your client class itself"),
        (dict, resilient_handler, "needs an `async def run(self...)` method"),
        (ResilientClient, print, "pass your handler"),
        (Broken, resilient_handler, "a client process failed: RuntimeError('oops')"),
    ],
)
def test_a_wrong_shape_or_a_crash_gets_a_hint(client: object, handler: object, hint: str) -> None:
    feedback = lesson07.resilient(client, handler)
    assert not feedback.passed
    assert hint in feedback.text


# The lesson shows the code of wssim.course.capstone_examples: the two must not drift apart.

LESSON = Path(__file__).resolve().parent.parent / "notebooks" / "07-capstone.ipynb"


def definitions(source: str) -> dict[str, str]:
    """Top-level classes and functions of ``source``, by name, as ASTs without their name."""
    found = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            name, node.name = node.name, "_"
            found[name] = ast.dump(node)
    return found


def test_the_lesson_shows_the_code_that_is_tested() -> None:
    cells = json.loads(LESSON.read_text(encoding="utf-8"))["cells"]
    sources = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
    package = definitions(inspect.getsource(capstone_examples))
    naive = next(definitions(s) for s in sources if "class NaiveClient" in s)
    assert naive == {k: package[k] for k in ("NaiveClient", "naive_handler")}
    solution = next(
        c
        for c in cells
        if "solution" in c["metadata"].get("tags", [])
        and "class ResilientClient:" in "".join(c["source"])
    )
    assert definitions("".join(solution["source"])) == {
        k: package[k] for k in ("ResilientClient", "problem", "resilient_handler")
    }
    # The learner starts from the naive version, under the solution's names.
    starter = definitions(solution["metadata"]["wssim"]["starter"])
    assert starter == {
        "ResilientClient": package["NaiveClient"],
        "resilient_handler": package["naive_handler"],
    }


def test_the_run_without_heartbeats_is_read_from_its_own_scorecard() -> None:
    small = lesson07.check_run(ResilientClient, resilient_handler)
    names = tuple(f"client{i:03d}" for i in range(200))
    lines = (
        Line("messages lost", 428, "428 of 26,200", "0", False),
        Line("worst time disconnected", 138.0, "138.0 s", "<= 60 s", False),
        Line("peak reconnect rate", 24, "24/s", "<= 50/s", True),
    )
    full = replace(
        small,
        clients=names,
        schedule=chaos.schedule(1, names),
        scorecard=Scorecard(lines),
    )
    failing = ["messages lost", "worst time disconnected"]
    assert lesson07.without_heartbeats(full, failing).passed
    assert lesson07.without_heartbeats(full, failing[::-1]).passed
    for answer, hint in [
        (["messages lost"], "compare your list with the lines marked FAIL"),
        ("messages lost", "answer with a list of line names"),
    ]:
        feedback = lesson07.without_heartbeats(full, answer)
        assert not feedback.passed and hint in feedback.text
    assert "pass the run itself" in lesson07.without_heartbeats(None, failing).text
    assert "full-scale experiment" in lesson07.without_heartbeats(small, failing).text
    healthy = replace(full, scorecard=Scorecard(lines[2:]))
    assert "turn the heartbeats off" in lesson07.without_heartbeats(healthy, failing).text
