"""Languages: the interface in English (the default) or Simplified Chinese (``zh-CN``).

    from sandbox.i18n import _, use, negotiate
    use(negotiate("zh-CN,zh;q=0.9,en;q=0.8"))      # this context speaks zh-CN
    _("Review queue")                               # -> "审核队列"
    N_("Catalog models you may see.")               # marked for the catalogue, translated when shown
    fmt_number(1234567.891, "zh-CN", decimals=2)    # -> "1,234,567.89"

Messages are GNU gettext catalogues made with Babel (``make i18n``: extract → ``twh.pot``,
update → ``zh_CN/LC_MESSAGES/twh.po``, compile → ``twh.mo``, which is committed); the web's
templates use Jinja2's i18n extension with the same catalogue. Only what people read is
translated: error *codes*, rule names, states as identifiers, ids and data never are.

Modules: :mod:`.locales` (which languages exist, choosing one), :mod:`.translate` (gettext per
language, the active one per context), :mod:`.numbers` (numbers for people). Imports nothing of
the application (the CLI imports it at start-up: the standard library only, Babel lazily).
"""

from .locales import DEFAULT, SUPPORTED, negotiate, normalize
from .numbers import fmt_bytes, fmt_eps, fmt_number
from .translate import N_, _, active, gettext, ngettext, translations, use

__all__ = ["DEFAULT", "N_", "SUPPORTED", "_", "active", "fmt_bytes", "fmt_eps", "fmt_number", "gettext", "locales",
           "negotiate", "ngettext", "normalize", "numbers", "translate", "translations", "use"]
