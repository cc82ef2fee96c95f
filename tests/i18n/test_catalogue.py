"""The Chinese catalogue is complete and current: every message the code and templates say (as
Babel extracts them with sandbox/i18n/babel.cfg, the same way as `make i18n`) has a translation, keeps its
placeholders and markup, and the committed .mo is the compiled .po (a fresh clone needs no
build step to speak Chinese)."""

from __future__ import annotations

import gettext
import io
import re
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[2]
LOCALE = ROOT / "sandbox" / "i18n" / "locale"
PO = LOCALE / "zh_CN" / "LC_MESSAGES" / "twh.po"
MO = LOCALE / "zh_CN" / "LC_MESSAGES" / "twh.mo"
_PLACEHOLDER = re.compile(r"%\([a-z_]+\)s|\{[a-z_]+(?:!r)?\}")
_TAG = re.compile(r"</?[a-z]+(?: [a-z-]+=\"[^\"]*\")*>")


def _method_map() -> tuple[list[tuple[str, str]], dict[str, dict[str, str]]]:
    """sandbox/i18n/babel.cfg, read as pybabel reads it."""
    from babel.messages.frontend import parse_mapping_cfg

    with open(ROOT / "sandbox" / "i18n" / "babel.cfg", encoding="utf-8") as fh:
        return parse_mapping_cfg(fh)


@pytest.fixture(scope="module")
def extracted() -> set[str | tuple[str, ...]]:
    method_map, options_map = _method_map()
    found = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
            str(ROOT), method_map, options_map,
            keywords={"_": None, "gettext": None, "ngettext": (1, 2), "N_": None}):  # N_: help, marked at import
        found.add(message)
    return found


@pytest.fixture(scope="module")
def catalog():
    with open(PO, "rb") as fh:
        return read_po(fh, locale="zh_CN")


def test_every_message_of_the_interface_is_translated(extracted, catalog):
    assert len(extracted) > 400
    missing = sorted(str(m) for m in extracted if not (catalog.get(m) and _translated(catalog.get(m).string)))
    assert missing == [], f"run `make i18n` and translate these in {PO.relative_to(ROOT)}: {missing[:20]}"


def _translated(s: str | tuple[str, ...]) -> bool:
    return all(s) if isinstance(s, tuple) else bool(s)


def test_translations_keep_placeholders_and_markup(catalog):
    for m in catalog:
        if not m.id:
            continue
        ids = m.id if isinstance(m.id, tuple) else (m.id,)
        strings = m.string if isinstance(m.string, tuple) else (m.string,)
        for s in strings:
            assert set(_PLACEHOLDER.findall(s)) == set(_PLACEHOLDER.findall(ids[-1])), (m.id, s)
            # markup (and so every translate="no" around a data value) is kept, tag for tag
            assert sorted(_TAG.findall(s)) == sorted(_TAG.findall(ids[-1])), (m.id, s)


def test_the_committed_mo_is_the_compiled_po(catalog):
    buf = io.BytesIO()
    write_mo(buf, catalog)
    fresh = gettext.GNUTranslations(io.BytesIO(buf.getvalue()))
    committed = gettext.GNUTranslations(io.BytesIO(MO.read_bytes()))
    assert committed._catalog == fresh._catalog, "the .po changed: run `make i18n` (it compiles the .mo)"  # noqa: SLF001


def test_the_catalogue_is_packaged():
    text = (ROOT / "pyproject.toml").read_text()
    assert "i18n/locale/*/LC_MESSAGES/*.mo" in text


def test_every_command_and_option_of_the_cli_has_chinese_help():
    """``twh … --help`` in zh-CN: the help of every command, group and parameter (typer's own
    completion options included) is translated, not left in English. A command whose help is a
    docstring, or an option whose help is not marked ``N_``, never reaches the catalogue."""
    import contextvars
    import re

    import typer

    from sandbox.i18n import gettext, use
    from sandbox.interfaces.cli.main import app

    han = re.compile(r"[\u4e00-\u9fff]")

    def untranslated() -> list[str]:
        use("zh-CN")  # in a copied context: the language of the test's own context stays
        english = []
        todo = [("twh", typer.main.get_command(app))]
        while todo:
            path, cmd = todo.pop()
            todo += [(f"{path} {name}", sub) for name, sub in getattr(cmd, "commands", {}).items()]
            for obj in (cmd, *cmd.params):
                text = getattr(obj, "help", None)
                if text and not han.search(gettext(text)):
                    english.append(f"{path} {getattr(obj, 'name', '')}: {text[:60]}")
        return english

    assert contextvars.copy_context().run(untranslated) == []
