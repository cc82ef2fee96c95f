"""The scale-out engine: one SparkSession per process (Spark + delta-spark), and Spark expressions of
the declared-schema rules that Spark ingest checks.

    spark = get_session(settings.spark_master, settings.spark_conf)    # JARs from the Ivy cache

``python -m sandbox.engines.spark`` resolves delta-spark's JARs once (``make spark-jars``).
Modules: :mod:`.spark`, :mod:`.spark_rules`. pyspark is imported only when a session is asked for.

May import: :mod:`sandbox.errors` and the :mod:`connectors` library.
"""

__all__ = ["spark", "spark_rules"]
