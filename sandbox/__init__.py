"""The training warehouse application: facade, jobs, broker, gate, audit, API, CLI, client.

Leaf libraries (:mod:`policies`, :mod:`dp`, :mod:`connectors`) never import this package; this
package combines them behind one facade, :class:`sandbox.warehouse.Warehouse`.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing itself (and re, enum) costs ~10 ms of every `twh`
if TYPE_CHECKING:
    from typing import Any

__all__ = ["Client", "LocalClient", "Settings", "Warehouse"]


def __getattr__(name: str) -> Any:  # lazy: `import sandbox` stays cheap (the CLI starts fast)
    if name == "Warehouse":
        from .warehouse import Warehouse

        return Warehouse
    if name == "Settings":
        from .settings import Settings

        return Settings
    if name in ("Client", "LocalClient"):
        from .interfaces import client

        return getattr(client, name)
    raise AttributeError(name)
