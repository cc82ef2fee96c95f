"""Which languages the interface speaks, and picking one from what a person or browser asks for."""

from __future__ import annotations

#: the languages with a catalogue (``en`` is the source language: no catalogue needed)
SUPPORTED = ("en", "zh-CN")
DEFAULT = "en"
#: BCP 47 tag -> gettext catalogue folder
GETTEXT = {"en": "en", "zh-CN": "zh_CN"}
#: BCP 47 tag -> Babel (CLDR) locale, for numbers
CLDR = {"en": "en_US", "zh-CN": "zh_Hans_CN"}


def normalize(tag: str | None) -> str | None:
    """A supported language for ``tag`` (``zh``, ``zh_CN``, ``zh-Hans-CN``, ``ZH-cn`` → ``zh-CN``;
    ``en-GB`` → ``en``), or None when we do not speak it. Traditional Chinese (``zh-TW``,
    ``zh-HK``, ``zh-Hant``) is not ``zh-CN``: its readers get the default rather than the wrong script."""
    if not tag or not isinstance(tag, str) or len(tag) > 35:
        return None
    parts = tag.strip().replace("_", "-").lower().split("-")
    if parts[0] == "en":
        return "en"
    if parts[0] == "zh":
        rest = set(parts[1:])
        if rest & {"tw", "hk", "mo", "hant"}:
            return None
        return "zh-CN"
    return None


def negotiate(accept_language: str | None, default: str = DEFAULT) -> str:
    """The best supported language of an ``Accept-Language`` header (RFC 9110 §12.5.4 weights)."""
    best, best_q = default, 0.0
    for i, item in enumerate((accept_language or "")[:500].split(",")):
        tag, _, params = item.strip().partition(";")
        q = 1.0
        for p in params.split(";"):
            k, _, v = p.strip().partition("=")
            if k == "q":
                try:
                    q = float(v)
                except ValueError:
                    q = 0.0
        lang = normalize(tag)
        # equal weights: the earlier entry wins (a browser lists its preference first)
        if lang is not None and q > best_q and q > 0:
            best, best_q = lang, q
    return best
