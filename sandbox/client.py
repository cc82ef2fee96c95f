"""The Python client, where users import it from: ``from sandbox.client import Client, LocalClient``.

It lives in :mod:`sandbox.interfaces.client`; this module only hands its two classes on.
"""

from .interfaces.client import Client, LocalClient

__all__ = ["Client", "LocalClient"]
