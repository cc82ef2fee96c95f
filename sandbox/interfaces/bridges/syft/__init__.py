"""The warehouse as a PySyft data owner (syft 0.10 + syft-rds): :mod:`.bridge` publishes and passes
jobs, :mod:`.code` turns a Syft job's code into a warehouse job, :mod:`.ledger` remembers which
became which, :mod:`.values` holds its configuration and reports.

    bridge = SyftBridge(warehouse, rds_client, config)
    bridge.publish(); bridge.serve_once()
"""

__all__ = ["bridge", "code", "ledger", "values"]
