"""gettext per language, and the language of the current context (a request, a CLI run).

:func:`use` sets the active language for this context (a :class:`contextvars.ContextVar`: each
request or thread has its own); :func:`_` translates into it; :func:`N_` only marks a message for
the catalogue (text written before the language is known: a CLI command's help). The catalogues
are compiled ``.mo`` files beside this module, loaded once per language with the standard library.
"""

from __future__ import annotations

import functools
from contextvars import ContextVar, Token
from pathlib import Path

from .locales import DEFAULT, GETTEXT, normalize

TYPE_CHECKING = False
if TYPE_CHECKING:
    import gettext as _gettext

LOCALE_DIR = Path(__file__).parent / "locale"
DOMAIN = "twh"
_active: ContextVar[str] = ContextVar("twh_language", default=DEFAULT)


class _English:
    """English: the messages as written (``gettext.NullTranslations``'s answers, without importing
    gettext: ~2 ms of every English command)."""

    def gettext(self, message: str) -> str:
        return message

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        return singular if n == 1 else plural

    def pgettext(self, context: str, message: str) -> str:  # (jinja's i18n extension looks for these)
        return message

    def npgettext(self, context: str, singular: str, plural: str, n: int) -> str:
        return singular if n == 1 else plural


@functools.cache
def translations(lang: str) -> _gettext.NullTranslations | _English:
    """The catalogue of ``lang`` (English: the messages as written)."""
    code = normalize(lang) or DEFAULT
    if code == DEFAULT:
        return _English()
    import gettext as _gettext

    # fallback=False: a missing catalogue of a supported language is a broken install, not English
    return _gettext.translation(DOMAIN, LOCALE_DIR, languages=[GETTEXT[code]])


def use(lang: str | None) -> Token[str]:
    """Speak ``lang`` (normalised; unknown: the default) in this context from now on."""
    return _active.set(normalize(lang) or DEFAULT)


def active() -> str:
    return _active.get()


def gettext(message: str) -> str:
    return translations(_active.get()).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return translations(_active.get()).ngettext(singular, plural, n)


_ = gettext


def N_(message: str) -> str:  # noqa: N802 - the name Babel and xgettext know
    """Mark ``message`` for the catalogue without translating it now: for text made before the
    language is known (a CLI command's help, built at import), translated where it is shown."""
    return message
