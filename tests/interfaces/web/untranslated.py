"""Finding words a Chinese page shows in English: the check behind the zh-CN page tests.

A page's own words are translated; data values (names, ids, hashes, SQL, what a job wrote, the
service's messages) are not, and the templates mark them: an element with ``translate="no"``
(the HTML attribute meant for exactly this), or ``<code>``/``<pre>``. Everything else a person
reads — text nodes, ``alt`` and ``aria-label``, a textarea's placeholder — must hold no Latin
word but the technical names below, which Chinese text uses as they are.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

#: names and units Chinese pages use as is (formats, standards, metrics, products, SI units)
TECHNICAL = {
    "SHA-256", "CSV", "JSON", "Lines", "SQL", "DP", "AUC", "TPR", "FPR", "ROC", "UTC", "ID", "MB", "GB", "kB", "B",
    "GB/T", "in-toto", "Great", "Expectations", "PySyft", "sacroml", "dtype", "q", "s",
}
_WORD = re.compile(r"(?<![0-9A-Za-z_.])[A-Za-z][A-Za-z0-9_\-/.]*")  # not the e of 1e-08
_VERSION = re.compile(r"v\d+")
_SKIP = {"code", "pre", "script", "style", "title", "head"}
_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
_ATTRS = ("alt", "aria-label")


def foreign_words(text: str) -> list[str]:
    """The Latin words of ``text`` that are not a technical name or a version (``v3``)."""
    return [w for w in (m.group().rstrip(".-/") for m in _WORD.finditer(text))
            if w and w not in TECHNICAL and not _VERSION.fullmatch(w)]


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, bool]] = []  # (tag, skipped: inside data or code)
        self.found: list[str] = []

    def _skipping(self) -> bool:
        return bool(self.stack) and self.stack[-1][1]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        skip = self._skipping() or tag in _SKIP or a.get("translate") == "no"
        if not skip:
            for name in _ATTRS:
                if a.get(name) and foreign_words(a[name] or ""):
                    self.found.append(f"<{tag} {name}>: {a[name]}")
            if tag == "textarea" and a.get("placeholder") and foreign_words(a["placeholder"] or ""):
                self.found.append(f"<textarea placeholder>: {a['placeholder']}")
        if tag not in _VOID:
            self.stack.append((tag, skip))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _VOID and self.stack:
            self.stack.pop()

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self.stack) - 1, -1, -1):  # close up to the matching element (lenient HTML)
            if self.stack[i][0] == tag:
                del self.stack[i:]
                return

    def handle_data(self, data: str) -> None:
        if not self._skipping() and data.strip() and foreign_words(data):
            parents = "/".join(t for t, _ in self.stack[-3:])
            self.found.append(f"{parents}: {data.strip()[:120]}")


def untranslated(html: str) -> list[str]:
    """Each piece of page text (with where it sits) that shows an English word to a Chinese reader."""
    c = _Collector()
    c.feed(html)
    c.close()
    return c.found


#: the same walk in the browser, over the live DOM: visible text outside translate="no"/code/pre
DOM_TEXT_JS = """() => {
  const skip = el => el.closest('[translate="no"], code, pre, script, style, head');
  const out = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    if (n.textContent.trim() && !skip(n.parentElement)) out.push(n.textContent.trim());
  }
  for (const el of document.querySelectorAll('[alt], [aria-label], textarea[placeholder]')) {
    if (skip(el)) continue;
    for (const a of ['alt', 'aria-label', 'placeholder']) if (el.getAttribute(a)) out.push(el.getAttribute(a));
  }
  return out;
}"""
