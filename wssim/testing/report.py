"""What a failing test leaves behind: the seed, the command that replays it, the last events
of its trace, and the full trace and its timeline as files.

Nothing here imports pytest; the plugin (:mod:`wssim.testing.plugin`) calls it.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from wssim.trace.events import Trace

__all__ = ["Reported", "replay_command", "safe_name", "save", "section"]

LAST_EVENTS = 20
"""Events of the trace shown in a failure report by default."""


@dataclass(frozen=True)
class Reported:
    """A trace to show in a failure report.

    Attributes:
        label: what it is (``"sim"``, ``"the smallest failing chaos run"``).
        trace: the trace.
        files: where it was saved (the full trace as text, its timeline).
    """

    label: str
    trace: Trace
    files: tuple[Path, ...] = ()


def safe_name(text: str) -> str:
    """``text`` as a file or directory name: letters, digits, ``.``, ``_`` and ``-``."""
    kept = "".join(c if c.isascii() and (c.isalnum() or c in "._") else "-" for c in text)
    name = "-".join(part for part in kept.split("-") if part).strip(".")
    return name[:150] or "test"


def replay_command(nodeid: str, seed: int, *, extra: Sequence[str] = ()) -> str:
    """The shell command that runs test ``nodeid`` again with ``seed``."""
    return shlex.join(["pytest", nodeid, f"--wssim-seed={seed}", *extra])


def save(trace: Trace, directory: Path, stem: str, *, timeline: bool = True) -> tuple[Path, ...]:
    """Write ``trace`` into ``directory``: ``stem.txt`` (every event, as a table) and, with
    ``timeline``, ``stem.png`` (its connection timeline, one lane per host, drawn without
    pyplot: :func:`wssim.plot.save_timeline`)."""
    directory.mkdir(parents=True, exist_ok=True)
    text = directory / f"{stem}.txt"
    text.write_text(f"{trace.table()}\n", encoding="utf-8")
    files = [text]
    if timeline and len(trace):
        # Imported here: matplotlib is slow to import, and only a failure draws.
        from wssim.plot.files import save_timeline

        files.append(save_timeline(trace, directory / f"{stem}.png", title=stem))
    return tuple(files)


def section(
    seed: int, replay: str, reported: Sequence[Reported], *, last: int = LAST_EVENTS, root: Path
) -> str:
    """The text of a failure report's ``wssim`` section."""
    lines = [f"seed {seed}; to replay this test:", f"  {replay}"]
    for item in reported:
        trace = item.trace
        shown = trace[-last:] if last else trace[:0]
        lines.append("")
        lines.append(
            f"{item.label}: the last {len(shown)} of {len(trace)} events "
            f"(the run reached t={trace.ran_until:g} s):"
        )
        if len(shown):
            lines.append(str(shown.table()))
        if item.files:
            paths = []
            for path in item.files:
                try:
                    paths.append(str(path.relative_to(root)))
                except ValueError:
                    paths.append(str(path))
            lines.append("the full trace and its timeline: " + ", ".join(paths))
    return "\n".join(lines)
