"""The ways in: the HTTP API, the web UI, the ``twh`` command line, the Python client, and bridges
to other platforms. All of them go through the facade (:class:`sandbox.warehouse.Warehouse`) and
hold no domain rule.

    create_app(settings)               # .api — FastAPI app, with the web UI (.web) mounted
    Client(url, token)                 # .client — the same methods as LocalClient(warehouse, user)
    twh --help                         # .cli

May import: the facade and the value modules it hands out (manifests, job specs, errors); the API,
the web UI and the bridges may import services only through the facade's attributes.
"""

__all__ = ["api", "bridges", "cli", "client", "client_plain", "client_products", "client_transport", "web"]
