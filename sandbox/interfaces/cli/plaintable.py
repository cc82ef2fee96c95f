"""The CLI's tables for people, without rich: importing ``rich.table`` and ``rich.console`` costs
about a quarter of a quick ``twh dataset list``.

The look is rich's ``Table(box=SIMPLE_HEAD, pad_edge=False)`` as :func:`.output.table` made it:
a blank line, the header (bold on a terminal), a rule, the rows, a blank line; columns three
cells apart. A table that fits the width is laid out exactly as rich lays it out
(``tests/interfaces/cli/test_plaintable.py`` compares the bytes over many tables, widths, CJK
text and both kinds of output). A table that does not fit is laid out differently, on purpose:
rich narrows the widest wrapable column without regard to its words, so a pipe's 80 columns
showed ``bank_stewa`` / ``rd``; here the free-text columns are narrowed, widest first, only down
to their longest word, and wrap between words. The ``whole`` columns (ids, names, states) are
never wrapped or cut. A table that fits only with words cut (a very narrow terminal) is left to
rich, as before.

Rich still prints anything this module does not measure the same way: text with characters
outside :func:`char_width`'s known ranges (combining marks, emoji, control characters), a
terminal whose encoding is not UTF-8, and a title (:meth:`Table.simple`). The standard library
only."""

from __future__ import annotations

import os
import sys
import unicodedata

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TextIO

#: one-cell characters whose width rich measures as 1 (rich.cells._SINGLE_CELL_UNICODE_RANGES)
_NARROW = ((0x20, 0x7E), (0xA0, 0xAC), (0xAE, 0x2FF), (0x370, 0x482), (0x2500, 0x25FC), (0x2800, 0x28FF))
#: blocks of CJK text (ideographs, kana, hangul, full-width forms, CJK punctuation) in which a
#: character whose East Asian width is W or F takes two cells
_WIDE_BLOCKS = ((0x1100, 0x115F), (0x2E80, 0x303E), (0x3041, 0x33FF), (0x3400, 0x4DBF), (0x4E00, 0x9FFF),
                (0xA000, 0xA4CF), (0xAC00, 0xD7A3), (0xF900, 0xFAFF), (0xFE30, 0xFE4F), (0xFF01, 0xFF60),
                (0xFFE0, 0xFFE6), (0x20000, 0x2FFFD), (0x30000, 0x3FFFD))
#: unassigned, control, format, private and combining characters: rich's widths differ or depend on neighbours
_UNMEASURED = frozenset({"Cn", "Cc", "Cf", "Co", "Cs", "Mn", "Mc", "Me"})
#: the Hangul fillers: letters that rich measures as nothing
_FILLERS = frozenset({0x115F, 0x1160, 0x3164, 0xFFA0})
BOLD, RESET = "\x1b[1m", "\x1b[0m"


def char_width(ch: str) -> int | None:
    """The cells ``ch`` takes (1 or 2), or ``None`` for a character this module leaves to rich."""
    o = ord(ch)
    if o > 0x7E and (unicodedata.category(ch) in _UNMEASURED or o in _FILLERS):
        return None
    for lo, hi in _NARROW:
        if lo <= o <= hi:
            return 1
    for lo, hi in _WIDE_BLOCKS:
        if lo <= o <= hi:
            return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else None
    return None


def cells(text: str) -> int | None:
    """The cells ``text`` takes, or ``None`` if a character of it is not measured here."""
    if text.isascii():
        return len(text) if text.isprintable() else None
    total = 0
    for ch in text:
        w = char_width(ch)
        if w is None:
            return None
        total += w
    return total


def _chop(word: str, width: int) -> list[str]:
    """A word cut into pieces of at most ``width`` cells (a wide character is never split)."""
    pieces, cur, used = [], "", 0
    for ch in word:
        w = cells(ch) or 1
        if cur and used + w > width:
            pieces.append(cur)
            cur, used = "", 0
        cur += ch
        used += w
    return pieces + [cur]


def wrap(text: str, width: int) -> list[str]:
    """``text`` in lines of at most ``width`` cells, broken at spaces; a word longer than the
    width is cut. Text that fits stays one line, exactly as given."""
    if (cells(text) or 0) <= width:
        return [text]
    lines: list[str] = []
    cur, used = "", -1  # -1: the line is empty (no space before its first word)
    for word in text.split(" "):
        w = cells(word) or 0
        if used >= 0 and used + 1 + w <= width:
            cur, used = cur + " " + word, used + 1 + w
            continue
        if used >= 0:
            lines.append(cur)
        pieces = _chop(word, width) if w > width else [word]
        lines += pieces[:-1]
        cur, used = pieces[-1], cells(pieces[-1]) or 0
    lines.append(cur)
    return lines


def _longest_word(text: str) -> int:
    return max((cells(w) or 0 for w in text.split(" ")), default=0)


class Table:
    """Columns (``whole``: never wrapped), rows of strings, and an optional title."""

    def __init__(self, columns: tuple[str, ...], whole: tuple[str, ...] = (), title: str | None = None) -> None:
        self.columns = tuple(columns)
        self.whole = tuple(name in whole for name in self.columns)
        self.title = title
        self.rows: list[tuple[str, ...]] = []

    def add_row(self, *cells_: Any) -> None:
        self.rows.append(tuple("" if v is None else str(v) for v in cells_))

    def simple(self) -> bool:
        """Whether :meth:`lines` lays this table out (else rich prints it)."""
        if self.title is not None or any(len(r) != len(self.columns) for r in self.rows):
            return False
        if any("[" in c or ":" in c for c in self.columns):  # rich reads a header's markup and :emoji:
            return False
        return all(cells(text) is not None for r in (self.columns, *self.rows) for text in r)

    def widths(self, width: int) -> list[int] | None:
        """Each column's width of text (padding excluded) for a terminal ``width`` cells wide;
        ``None`` if the table fits only with words cut (rich lays that out)."""
        n = len(self.columns)
        pads = [0] * n if n == 1 else [1] + [2] * (n - 2) + [1]
        texts = list(zip(self.columns, *self.rows, strict=True))
        want = [max(cells(t) or 0 for t in col) for col in texts]
        # rich gives a column at least one cell, padding included
        want = [w if w + p else 1 for w, p in zip(want, pads, strict=True)]
        room = width - (n + 1) - sum(pads)  # the edges and the dividers, then the padding
        excess = sum(want) - room
        if excess <= 0:
            return want
        # narrow the widest free-text column a cell at a time, down to its longest word (whole
        # columns keep their width); where even that does not fit, rich lays the table out
        floor = [max(_longest_word(t) for t in col) for col in texts]
        while excess > 0:
            free = [i for i in range(n) if not self.whole[i] and want[i] > floor[i]]
            if not free:
                return None
            i = max(free, key=lambda j: (want[j], -j))
            want[i] -= 1
            excess -= 1
        return want

    def lines(self, width: int, *, bold: bool = False) -> list[str] | None:
        """The table as printed, one string per line (no newlines); ``None``: see :meth:`widths`."""
        n = len(self.columns)
        ws = self.widths(width)
        if ws is None:
            return None
        total = sum(ws) + (0 if n == 1 else 2 * n - 2) + n + 1
        blank = " " * total

        def block(texts: tuple[str, ...], header: bool) -> list[str]:
            cols = [[_pad(t, w) for t in (wrap(text, w) if not whole else [text])]
                    for text, w, whole in zip(texts, ws, self.whole, strict=True)]
            height = max(len(c) for c in cols)
            out = []
            if header:  # rich sets a header at the bottom of its row
                cols = [[" " * w] * (height - len(c)) + c for c, w in zip(cols, ws, strict=True)]
            for k in range(height):
                parts = []
                for i, (col, w) in enumerate(zip(cols, ws, strict=True)):
                    text = col[k] if k < len(col) else " " * w
                    left = " " if 0 < i else ""
                    right = " " if i < n - 1 else ""
                    if header and bold:
                        text = "".join(BOLD + s + RESET for s in (left, text, right) if s)
                    else:
                        text = left + text + right
                    parts.append(text)
                out.append(" " + " ".join(parts) + " ")
            return out

        rule = " " + "─" * (total - 2) + " "
        body = [line for r in self.rows for line in block(r, False)]
        return [blank, *block(self.columns, True), rule, *body, blank]


def _pad(text: str, width: int) -> str:
    return text + " " * max(0, width - (cells(text) or 0))


def _env_terminal(stream: TextIO, environ: Any) -> bool:
    """Whether rich would treat ``stream`` as a terminal (rich.console.Console.is_terminal)."""
    tty = environ.get("TTY_COMPATIBLE", "")
    if tty in ("0", "1"):
        return tty == "1"
    if environ.get("FORCE_COLOR") is not None:
        return environ.get("FORCE_COLOR") != ""
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def layout(stream: TextIO, environ: Any) -> tuple[int, bool] | None:
    """(width, bold header) as rich's console would use for ``stream``, or ``None`` where only
    rich should print (an encoding other than UTF-8)."""
    if not (getattr(stream, "encoding", None) or "").lower().startswith("utf"):
        return None
    terminal = _env_terminal(stream, environ)
    dumb = terminal and environ.get("TERM", "").lower() in ("dumb", "unknown")
    bold = terminal and not dumb
    columns, lines = environ.get("COLUMNS"), environ.get("LINES")
    columns = columns if columns is not None and columns.isdigit() else None
    if columns is not None and lines is not None and lines.isdigit():
        return int(columns), bold
    if dumb:  # rich: 80 columns on a dumb terminal, COLUMNS or not (unless LINES is set too)
        return 80, bold
    if columns is not None:
        return int(columns), bold
    for fd in (0, 1, 2):
        try:
            return os.get_terminal_size(fd).columns or 80, bold
        except (AttributeError, ValueError, OSError):
            pass
    return 80, bold


def show(t: Table) -> bool:
    """Print ``t`` on stdout; ``False`` (nothing printed) where rich must print it instead."""
    if not t.simple():
        return False
    how = layout(sys.stdout, os.environ)
    if how is None:
        return False
    width, bold = how
    lines = t.lines(width, bold=bold)
    if lines is None:
        return False
    sys.stdout.write("".join(line + "\n" for line in lines))
    return True
