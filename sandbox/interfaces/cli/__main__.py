"""``python -m sandbox.interfaces.cli`` is ``twh``."""

from .main import app

app()
