"""Printing for the lessons: text narrowed to the width of a notebook.

:func:`fit` narrows a text table, or a report, to 100 characters a line, wrapping its
widest column instead of letting lines run off the page.
"""

from __future__ import annotations

import re
import textwrap

__all__ = ["WIDTH", "fit"]

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
