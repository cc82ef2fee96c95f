"""The flagship demo, small-business credit (普惠金融): its synthetic government and market data, its
manifests and jobs, and the scenario that runs them end to end (``twh demo``).

    generate(out_dir, seed=7)         # .generate — firms, tax, social insurance, loans (CSV)
    run_demo(home, console=console)   # .scenario — register, ingest, jobs, approvals, audit
    run_products_step(wh, c, export_id, home, say)   # .products_step — catalog, authorisations, scores

May import: the client, the facade and the :mod:`dp` library (the training step); it is itself
imported only by the CLI and by tests.
"""

__all__ = ["generate", "products_step", "scenario", "training_step"]
