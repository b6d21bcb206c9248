"""The course's notebooks: learner copies made from the notebooks with solutions.

Solutions are written once, in ``notebooks/NN-name.ipynb``. A cell tagged ``solution`` is
an answer: in the learner copy (``notebooks/learner/NN-name.ipynb``) a markdown solution
disappears, and a code solution is replaced by its starting point, kept in the cell's
metadata as ``"wssim": {"starter": "..."}``. Everything else is the same, so the check
cells that follow each exercise run in both copies: they say "Correct" in one, and give a
hint in the other.

Run ``python -m wssim.course`` (or ``python3 dev.py execute``) to write the learner copies
again; a test fails when they drift from their solutions.

:func:`fit` is for the lessons themselves: it narrows a text table, or a report, to the
width of a notebook (100 characters), wrapping its widest column instead of letting lines
run off the page.
"""

from __future__ import annotations

import copy
import json
import re
import sys
import textwrap
from collections.abc import Collection
from pathlib import Path
from typing import Any

__all__ = [
    "SOLUTION_TAG",
    "STARTER_TAG",
    "WIDTH",
    "exercises",
    "fit",
    "learner_copy",
    "learner_path",
    "write_learner_copies",
]

SOLUTION_TAG = "solution"
STARTER_TAG = "starter"
LEARNER_DIR = "learner"

Notebook = dict[str, Any]


def _tags(cell: dict[str, Any]) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


_EXERCISE = re.compile(r"\*\*Exercise (\d+)\.\*\*")


def exercises(notebook: Notebook) -> dict[int, list[int]]:
    """The code solutions of each exercise: exercise number -> indices of its cells tagged
    ``solution`` (a solution belongs to the last "**Exercise N.**" above it)."""
    out: dict[int, list[int]] = {}
    current: int | None = None
    for index, cell in enumerate(notebook["cells"]):
        if cell["cell_type"] == "markdown" and SOLUTION_TAG not in _tags(cell):
            found = _EXERCISE.findall(_source(cell))
            if found:
                current = int(found[-1])
        elif cell["cell_type"] == "code" and SOLUTION_TAG in _tags(cell):
            if current is None:
                raise ValueError(f"solution cell {cell.get('id')!r} comes before any exercise")
            out.setdefault(current, []).append(index)
    return out


def learner_copy(notebook: Notebook, name: str, *, solved: Collection[int] = ()) -> Notebook:
    """Return the learner copy of ``notebook`` (called ``name``), without outputs.

    Args:
        notebook: the lesson, with its solutions.
        name: its file name, for the link back to it.
        solved: numbers of exercises whose code solutions stay in the copy, as if the
            learner had solved them (for tests: any mix of solved and unsolved exercises
            must run to the end).

    Raises:
        ValueError: if a code cell tagged ``solution`` has no starting point.
    """
    found = exercises(notebook) if solved else {}
    keep = {i for n, cells in found.items() if n in solved for i in cells}
    copied = copy.deepcopy(notebook)
    cells: list[dict[str, Any]] = []
    for index, cell in enumerate(copied["cells"]):
        tags = _tags(cell)
        meta = cell.setdefault("metadata", {})
        if index in keep:
            meta.pop("wssim", None)
            meta["tags"] = [STARTER_TAG if t == SOLUTION_TAG else t for t in tags]
            cells.append(cell)
            continue
        if SOLUTION_TAG not in tags:
            if cell["cell_type"] == "markdown":
                # The copy lives one folder down: links that leave notebooks/ go one more up.
                cell["source"] = _source(cell).replace("](../", "](../../")
            cells.append(cell)
            continue
        if cell["cell_type"] != "code":
            continue  # an explanation of the answer: learners write their own
        starter = meta.get("wssim", {}).get("starter")
        if not isinstance(starter, str):
            raise ValueError(
                f"{name}: solution cell {cell.get('id')!r} needs a starting point in its "
                f'metadata: "wssim": {{"starter": "..."}}'
            )
        meta.pop("wssim")
        meta["tags"] = [STARTER_TAG if t == SOLUTION_TAG else t for t in tags]
        cell["source"] = starter
        cells.append(cell)
    for cell in cells:
        if cell["cell_type"] == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
    note = {
        "cell_type": "markdown",
        "id": "learner-copy",
        "metadata": {},
        "source": (
            "> **Learner copy.** Each exercise starts from a starting point for you to complete; "
            "run the check cell after it to find out whether you got it. The solutions are in "
            f"the [full notebook](../{name})."
        ),
    }
    cells.insert(1, note)
    copied["cells"] = cells
    return copied


def learner_path(solution: Path) -> Path:
    """Where the learner copy of the notebook at ``solution`` lives."""
    return solution.parent / LEARNER_DIR / solution.name


def _normalise(notebook: Notebook) -> list[tuple[str, str, str, list[str]]]:
    """What must match between a fresh learner copy and the committed one: not outputs."""
    return [(c.get("id", ""), c["cell_type"], _source(c), _tags(c)) for c in notebook["cells"]]


def _source(cell: dict[str, Any]) -> str:
    source = cell["source"]
    return source if isinstance(source, str) else "".join(source)


def drifted(solution: Path) -> bool:
    """True if the committed learner copy of ``solution`` is not what it would be made now."""
    copy_path = learner_path(solution)
    if not copy_path.exists():
        return True
    fresh = learner_copy(json.loads(solution.read_text(encoding="utf-8")), solution.name)
    committed = json.loads(copy_path.read_text(encoding="utf-8"))
    return _normalise(fresh) != _normalise(committed)


def write_learner_copies(solutions: list[Path], *, every: bool = False) -> list[Path]:
    """Write the learner copy of each notebook whose copy drifted (or ``every`` one);
    return those written.

    The copies are written without outputs: execute them afterwards.
    """
    written = []
    for solution in solutions:
        if not every and not drifted(solution):
            continue
        fresh = learner_copy(json.loads(solution.read_text(encoding="utf-8")), solution.name)
        target = learner_path(solution)
        target.parent.mkdir(exist_ok=True)
        target.write_text(json.dumps(fresh, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        written.append(target)
    return written


WIDTH = 100
"""The widest line a lesson prints: what a notebook shows without scrolling."""

_RULE = re.compile(r"^-+(  -+)*$")


def fit(thing: object, width: int = WIDTH) -> str:
    """``str(thing)``, narrowed to ``width`` characters a line.

    A text table (a header, a rule of dashes, rows: :class:`wssim.Table` and every table of
    the course) keeps its columns; its widest columns wrap, their cells continuing on the
    next lines. Other lines longer than ``width`` wrap at spaces and continue indented
    under their text. Nothing is cut: only where lines break changes.
    """
    lines = str(thing).split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        if i + 1 < len(lines) and _RULE.match(lines[i + 1]) and lines[i].strip():
            gaps = [(m.end(), m.end() + 2) for m in re.finditer(r"-+", lines[i + 1])][:-1]
            end = i + 2
            # A row has spaces where the rule has them; the first line that does not ends it.
            while end < len(lines) and all(not lines[end][a:b].strip() for a, b in gaps):
                if not lines[end].strip():
                    break
                end += 1
            out += _fit_table(lines[i:end], width)
            i = end
            continue
        out += _fit_line(lines[i], width)
        i += 1
    return "\n".join(out)


def _fit_line(line: str, width: int) -> list[str]:
    if len(line) <= width:
        return [line]
    lead = len(line) - len(line.lstrip())
    # Continue under the text after a label ("   client  what it saw..."), if there is one.
    label = re.match(r"^\s*\S+(?: \S+)*  +(?=\S)", line)
    indent = len(label.group(0)) if label and len(label.group(0)) <= 40 else lead
    if line[lead:].startswith("- "):  # a bullet continues under its text
        indent = lead + 2
    wrapped = textwrap.wrap(
        line[lead:],
        width=width - lead,
        subsequent_indent=" " * (indent - lead),
        break_long_words=False,
        break_on_hyphens=False,
    )
    return [" " * lead + part for part in wrapped] or [line]


def _fit_table(lines: list[str], width: int) -> list[str]:
    if max(len(line) for line in lines) <= width:
        return lines
    spans = [(m.start(), m.end()) for m in re.finditer(r"-+", lines[1])]
    if len(spans) < 2:
        return lines
    last = len(spans) - 1
    # Each cell as printed, padded to its column (the last column runs to the line's end).
    rows = [
        [
            line[a:].ljust(b - a) if k == last else line[a:b].ljust(b - a)
            for k, (a, b) in enumerate(spans)
        ]
        for line in (lines[0], *lines[2:])
    ]
    widths = [max(len(row[k].rstrip()) for row in rows) for k in range(len(spans))]
    words = [max(len(w) for row in rows for w in row[k].split() or [""]) for k in range(len(spans))]
    values = [max((len(row[k].strip()) for row in rows[1:]), default=0) for k in range(len(spans))]
    right = [
        all(row[k].rstrip() == row[k] or not row[k].strip() for row in rows[1:])
        and any(row[k].startswith(" ") for row in rows[1:])
        for k in range(len(spans))
    ]
    wrapped: set[int] = set()

    def total() -> int:
        return sum(widths) + 2 * last

    # First wrap headers wider than their column's values ("down: refused" over "4,000"), then
    # narrow the widest column that can still give room, never below its longest word.
    for floor in ([max(v, w) for v, w in zip(values, words, strict=True)], words):
        while total() > width:
            candidates = [k for k in range(len(spans)) if widths[k] > floor[k]]
            if not candidates:
                break
            k = max(candidates, key=lambda c: (widths[c], c))
            widths[k] = max(widths[k] - (total() - width), floor[k])
            wrapped.add(k)

    def render(cells: list[str]) -> list[str]:
        parts = [
            textwrap.wrap(cell.strip(), width=widths[k], break_on_hyphens=False) or [""]
            if k in wrapped
            else [cell[: widths[k]] if k != last else cell.rstrip()]
            for k, cell in enumerate(cells)
        ]
        out = []
        for n in range(max(len(p) for p in parts)):
            texts = [
                (p[n] if n < len(p) else "").rjust(widths[k])
                if k in wrapped and right[k]
                else (p[n] if n < len(p) else "").ljust(widths[k])
                for k, p in enumerate(parts)
            ]
            out.append("  ".join(texts).rstrip())
        return out

    rule = "  ".join("-" * w for w in widths)
    return [*render(rows[0]), rule, *(line for row in rows[1:] for line in render(row))]


def main(argv: list[str]) -> int:
    """``python -m wssim.course [--all] [NOTEBOOK...]``: write the learner copies that
    drifted from their notebooks (with ``--all``: every one)."""
    every = "--all" in argv
    paths = [Path(a) for a in argv if a != "--all"]
    paths = paths or sorted(Path("notebooks").glob("[0-9][0-9]-*.ipynb"))
    for path in write_learner_copies(paths, every=every):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
