"""Choosing a language, translating in a context, and numbers for people."""

from __future__ import annotations

import threading

import pytest

from sandbox.i18n import _, active, fmt_bytes, fmt_eps, fmt_number, negotiate, normalize, use


@pytest.mark.parametrize("tag,want", [("zh", "zh-CN"), ("zh_CN", "zh-CN"), ("ZH-cn", "zh-CN"), ("zh-Hans-CN", "zh-CN"),
                                      ("zh-SG", "zh-CN"), ("zh-TW", None), ("zh-Hant", None), ("zh-HK", None),
                                      ("en-GB", "en"), ("fr", None), ("", None), (None, None), ("x" * 40, None)])
def test_normalize(tag, want):
    assert normalize(tag) == want


@pytest.mark.parametrize("header,want", [
    ("zh-CN,zh;q=0.9,en;q=0.8", "zh-CN"), ("en-US,en;q=0.9,zh;q=0.8", "en"), ("fr-FR, zh;q=0.5", "zh-CN"),
    ("zh;q=0, en;q=0.1", "en"), ("zh-TW,zh-HK;q=0.9", "en"), ("", "en"), (None, "en"), ("zh;q=bad", "en"),
    ("en;q=0.5, zh-CN;q=0.8", "zh-CN")])
def test_negotiate(header, want):
    assert negotiate(header) == want


def test_each_context_speaks_its_own_language():
    use("en")
    seen = {}

    def worker() -> None:
        use("zh-CN")
        seen["zh"] = _("Review queue")

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert seen["zh"] == "审核队列" and _("Review queue") == "Review queue" and active() == "en"
    use("klingon")  # unknown: the default, never an error
    assert active() == "en"


def test_numbers_for_people():
    assert fmt_number(1234567) == "1,234,567" and fmt_number(1234567, "zh-CN") == "1,234,567"
    assert fmt_number(1234.5, decimals=2) == "1,234.50" and fmt_number(0.123456) == "0.1235"
    assert fmt_number(None) == "—" and fmt_number("x") == "x" and fmt_number(float("nan")) == "nan"
    assert fmt_number(True) == "True"  # not a number to format
    assert fmt_bytes(999) == "999 B" and fmt_bytes(12_345) == "12.3 kB" and fmt_bytes(3_400_000) == "3.4 MB"
    assert fmt_eps("1/3") == "0.3333 (1/3)" and fmt_eps("0.5") == "0.5" and fmt_eps("6") == "6"
    assert fmt_eps("not a number") == "not a number"
