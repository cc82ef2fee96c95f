"""The one typed Settings object, built at the entrypoint and passed down.

Library code never reads ``os.environ``; only :meth:`Settings.from_env` does, and only the CLI,
the API's app factory and the tests call it.

Environment variables (all optional):

============================  ============================================================
``TWH_HOME``                  the warehouse directory, a path or ``file://`` URI (default ``./warehouse``)
``TWH_DATABASE_URL``          SQLAlchemy URL of the catalog (default SQLite inside TWH_HOME)
``TWH_ENGINE``                query engine: ``duckdb`` (default) or ``spark``
``TWH_SPARK_MASTER``          Spark master URL for ``spark`` (default ``local[*]``)
``TWH_SPARK_REMOTE``          a Spark Connect server for ``spark`` (``sc://localhost:15002``): no JVM in this process
``TWH_SPARK_CONNECT_TOKEN``   the Connect server's bearer token (``spark.connect.authenticate.token``)
``TWH_SPARK_AUTH_SECRET``     a standalone cluster's shared secret (``spark.authenticate``)
``TWH_STORAGE_URI``           where new tables are stored: ``s3://bucket/prefix`` (default: the home)
``TWH_S3_ENDPOINT``           an S3-compatible endpoint, ``http(s)://host:port`` (empty: AWS)
``TWH_S3_REGION``             the store's region (default ``us-east-1``)
``TWH_S3_ACCESS_KEY_ID``      object-store credentials: only ever handed to delta-rs and to Spark's
``TWH_S3_SECRET_ACCESS_KEY``  S3A (never to a sandbox, a log, an error message or the audit)
``TWH_AUTO_MIGRATE``          ``0``: opening the warehouse only checks the schema (default ``1``)
``TWH_WORKER_ID``             this process's worker identity (default ``embedded@HOST``)
``TWH_LEASE_SECONDS``         job lease length (default 30)
``TWH_JOB_WALL_SECONDS``      wall-clock limit of one job (default 120)
``TWH_JOB_MEMORY_MB``         address-space limit of one job (default 2048)
``TWH_URL`` / ``TWH_TOKEN``   a running service for the CLI's remote mode (see :mod:`sandbox.interfaces.client`)
``TWH_PUBLIC_URL``            the URL people reach the service at; ``https://…`` makes cookies ``Secure``
``TWH_TRUSTED_PROXY``         ``1``: a TLS proxy in front sets ``X-Forwarded-For`` (cookies ``Secure``)
``TWH_TOKEN_TTL_DAYS``        how long a bearer token lives (default 90)
``TWH_AUDIT_ANCHORS``         file the audit chain's heads are appended to (default ``HOME/audit/anchors.log``)
``TWH_AUDIT_SYSLOG``          also send every head to syslog: ``/dev/log``, ``HOST:PORT`` (UDP) or empty
``TWH_AUDIT_REFUSALS_PER_JOB`` refused queries of one job audited verbatim; the rest are counted (default 50)
``TWH_REQUIRE_CLASSIFICATION`` ``1``: a manifest without a GB/T 43697 ``classification:`` is refused
============================  ============================================================

File modes: everything the warehouse creates is private to the user it runs as (files 0600,
folders 0700). :func:`use_private_umask` sets the process umask to 0o077; the entry points get
it from :meth:`Settings.from_env` (the CLI, the service, the workers) and from opening the
facade (:class:`sandbox.warehouse.Warehouse`), so no module sets modes of its own. Opening the
warehouse also checks the home itself (:meth:`Settings.secure_home`): a home that group or
others may read, write or enter is made 0700 there and then, and the facade writes an audit
record (``warehouse.home_mode_fixed``) with the mode it had. Fixing the top folder is enough:
nothing below it can be reached without entering it. (Refusing to start instead would leave
a warehouse created before this rule unusable until someone ran chmod by hand; fixing and
recording it closes the hole at once and leaves the evidence.) What the sandbox's per-run uid
must read is staged with explicit modes (:mod:`sandbox.isolation.scratch`).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from .errors import InvalidInput

if TYPE_CHECKING:  # pragma: no cover
    from .engines.spark import SparkTarget
    from .tables.uris import Location, ObjectStore

#: The process umask of every entry point: files 0600, folders 0700.
PRIVATE_UMASK = 0o077


def use_private_umask() -> None:
    """Make everything this process creates private to its user (idempotent, process-wide)."""
    os.umask(PRIVATE_UMASK)


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    home: Path = Field(description="warehouse directory: tables, job scratch, exports, audit anchors")
    database_url: str = Field(default="", description="catalog database; empty means SQLite in `home`")
    engine: Literal["duckdb", "spark"] = "duckdb"
    #: the Spark master for engine=spark: local[*], spark://host:7077, yarn, k8s://...
    spark_master: str = Field(default="local[*]", min_length=1)
    #: extra Spark configuration for engine=spark (e.g. executor memory)
    spark_conf: dict[str, str] = Field(default_factory=dict)
    #: a long-lived Spark Connect server (``sc://localhost:15002``); set, it replaces spark_master
    #: and no process of the warehouse starts a JVM of its own (see sandbox.engines.spark)
    spark_remote: str = Field(default="", max_length=300)
    #: the Connect server's bearer token (its ``spark.connect.authenticate.token``)
    spark_connect_token: SecretStr = SecretStr("")
    #: a standalone cluster's shared secret (``spark.authenticate``; ``make spark-cluster-up`` writes one)
    spark_auth_secret: SecretStr = SecretStr("")

    # -- table storage -------------------------------------------------------------------------
    #: where new tables are created: empty (the home, on local disk) or ``s3://bucket/prefix``.
    #: Existing tables stay where the catalog recorded them.
    storage_uri: str = Field(default="", max_length=500)
    s3_endpoint: str = Field(default="", max_length=300)
    s3_region: str = Field(default="us-east-1", min_length=1, max_length=64)
    s3_access_key_id: SecretStr = SecretStr("")
    s3_secret_access_key: SecretStr = SecretStr("")
    job_wall_seconds: float = Field(default=120.0, gt=0)
    job_cpu_seconds: int = Field(default=120, gt=0)
    job_memory_mb: int = Field(default=2048, ge=256)
    #: the DP trainer's sandbox (and the custom-model export run): torch needs > 2 GB of address space
    train_wall_seconds: float = Field(default=900.0, gt=0)
    train_memory_mb: int = Field(default=8192, ge=1024)
    #: the most threads the trainer may use; it takes one for small models (dp.training.threads)
    train_threads: int = Field(default=2, ge=1, le=64)
    #: run queued jobs on a background thread inside ``twh serve``
    run_worker: bool = True
    #: local mode (``twh --as USER``, no ``--url``): ``auto`` sends each command to a warm per-home
    #: server on a Unix socket inside the home (started detached when none runs; the CLI reads
    #: TWH_LOCAL_SERVER itself, before any of this is imported), ``off`` opens the warehouse in the
    #: command's own process (sandbox.interfaces.cli.local_server)
    local_server: Literal["auto", "off"] = "auto"
    #: the local server exits after this many minutes without a request
    local_server_idle_minutes: float = Field(default=15.0, gt=0, le=7 * 24 * 60)
    #: opening the warehouse migrates the catalog to the head; off: it only checks (``twh db upgrade``)
    auto_migrate: bool = True
    #: who runs jobs claimed by this process (see :mod:`sandbox.jobs.leases`). Unique among live
    #: workers; stable across restarts of one embedded service, so that on start-up it ends the
    #: jobs its previous process held without waiting for their leases to expire
    worker_id: str = Field(default_factory=lambda: f"embedded@{socket.gethostname()}", min_length=1, max_length=120)
    #: seconds a job's lease lasts; heartbeats renew it every third of this
    lease_seconds: float = Field(default=30.0, gt=0)

    # -- the service's edge ------------------------------------------------------------------
    #: where people reach the service (e.g. https://twh.example.org); https makes cookies Secure
    public_url: str = Field(default="", max_length=500)
    #: a TLS-terminating proxy in front sets X-Forwarded-For: the client is its last entry, and
    #: cookies are Secure (the request scheme the service sees is the proxy's, not the browser's)
    trusted_proxy: bool = False
    #: bearer tokens expire this long after issue (checked on every request, web sessions too)
    token_ttl_days: int = Field(default=90, ge=1, le=3650)
    #: failed authentications are recorded as one audit record per source per window (with a count)
    auth_window_seconds: float = Field(default=60.0, gt=0, le=86400)
    #: a source with more failures than this in one window is answered 429 without checking
    auth_failures_per_window: int = Field(default=30, ge=1, le=100_000)
    #: failed sign-ins on /ui/login per source per window; past it, sign-in answers 429 until the window ends
    login_attempts_per_window: int = Field(default=10, ge=1, le=100_000)
    #: request bodies larger than this are refused (413) before they are read; ingest has its own
    max_body_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)

    # -- the audit log -------------------------------------------------------------------------
    #: the file each committed chain head is appended to; put it outside the warehouse home (another
    #: volume, another owner) so that whoever can rewrite the home cannot rewrite it too
    audit_anchors: Path | None = None
    #: also send each head to syslog/journald (an append-only sink): "/dev/log", "HOST:PORT" (UDP)
    audit_syslog: str = Field(default="", max_length=300)
    #: refused queries of one job recorded verbatim (SQL and all); the rest are counted into one
    #: summary record per job, so a job grows the log by a bounded amount
    audit_refusals_per_job: int = Field(default=50, ge=0, le=100_000)

    # -- data classification -------------------------------------------------------------------
    #: refuse manifests without a classification (GB/T 43697 category and grade); off, an
    #: unclassified dataset is shown as such and ruled as general data
    require_classification: bool = False

    @field_validator("home", mode="before")
    @classmethod
    def _home_location(cls, value: object) -> object:
        # Storage locations are URIs (sandbox.tables.uris): `file:///srv/wh` and `/srv/wh` are the same home.
        if isinstance(value, str) and "://" in value:
            from .tables.uris import to_path

            return to_path(value)
        return value

    @field_validator("storage_uri")
    @classmethod
    def _storage_location(cls, value: str) -> str:
        if not value:
            return value
        from .tables.uris import to_uri

        return to_uri(value)

    @field_validator("spark_remote")
    @classmethod
    def _spark_remote(cls, value: str) -> str:
        if value and (not value.startswith("sc://") or ";" in value):
            raise ValueError("spark_remote must be an sc://host:port URL (the token is a setting of its own)")
        return value

    @field_validator("s3_endpoint")
    @classmethod
    def _s3_endpoint(cls, value: str) -> str:
        if value and (not value.lower().startswith(("http://", "https://")) or "@" in value):
            raise ValueError("s3_endpoint must be an http(s)://host:port URL without credentials")
        return value.rstrip("/")

    @property
    def object_store(self) -> ObjectStore | None:
        """The S3-compatible store, when credentials are set (``s3://`` tables need it)."""
        key, secret = self.s3_access_key_id.get_secret_value(), self.s3_secret_access_key.get_secret_value()
        if not key and not secret:
            return None
        if not (key and secret):
            raise InvalidInput("object storage needs both TWH_S3_ACCESS_KEY_ID and TWH_S3_SECRET_ACCESS_KEY",
                               details={"field": "s3_secret_access_key"})
        from .tables.uris import ObjectStore

        return ObjectStore(access_key_id=key, secret_access_key=secret, endpoint=self.s3_endpoint,
                           region=self.s3_region)

    @property
    def storage_root(self) -> Location:
        """Where new tables go: ``<root>/tables/<zone>/<dataset>``."""
        from .tables.uris import to_location

        return to_location(self.storage_uri or self.home, self.object_store)

    @property
    def shared_root(self) -> Location | None:
        """The storage every machine of this warehouse shares besides the catalog (``storage_uri``),
        where the keys and the unit dictionary live; ``None``: one machine, all of it in the home."""
        return self.storage_root if self.storage_uri else None

    def location(self, uri: str) -> Location:
        """A table location the catalog recorded, with this warehouse's store for ``s3://``."""
        from .tables.uris import to_location

        return to_location(uri, self.object_store if uri.startswith("s3://") else None)

    @property
    def spark_target(self) -> SparkTarget:
        """Where engine=spark runs (a Connect server, or this process's SparkSession on spark_master),
        with the object store's S3A settings: handed to the JVM at run time, never on a command line."""
        from .engines.spark import SparkTarget

        store = self.object_store
        return SparkTarget(master=self.spark_master, conf=tuple(sorted(self.spark_conf.items())),
                           remote=self.spark_remote, token=self.spark_connect_token.get_secret_value(),
                           hadoop=tuple(sorted(store.hadoop_conf().items())) if store is not None else (),
                           auth_secret=self.spark_auth_secret.get_secret_value())

    @property
    def home_uri(self) -> str:
        return self.home.absolute().as_uri()

    @property
    def catalog_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'catalog.db'}"

    @property
    def tables_dir(self) -> Path:
        return self.home / "tables"

    @property
    def jobs_dir(self) -> Path:
        return self.home / "jobs"

    @property
    def exports_dir(self) -> Path:
        return self.home / "exports"

    @property
    def quarantine_dir(self) -> Path:
        return self.home / "quarantine"

    @property
    def secrets_dir(self) -> Path:
        return self.home / "secrets"

    def secure_home(self) -> int | None:
        """Create the home (0700) if needed; if it exists and group or others have any access,
        make it 0700. Returns the mode it had when it was fixed, else ``None``."""
        use_private_umask()
        home = self.home
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        mode = home.stat().st_mode & 0o777
        if not mode & 0o077:
            return None
        try:
            os.chmod(home, mode & 0o700)
        except OSError as exc:
            raise InvalidInput(f"the warehouse home {home} is open to other users (mode {mode:o}) and cannot be "
                               f"made private: {exc.strerror}", details={"field": "home"}) from exc
        return mode

    @property
    def anchors_path(self) -> Path:
        return self.audit_anchors or self.home / "audit" / "anchors.log"

    @property
    def secure_cookies(self) -> bool:
        """Cookies carry ``Secure`` by configuration, never by the scheme a request arrived with."""
        return self.public_url.lower().startswith("https://") or self.trusted_proxy

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """The entry points' settings (CLI, service, workers); also sets the private umask."""
        use_private_umask()
        env = os.environ if environ is None else environ
        home = env.get("TWH_HOME", "warehouse")
        values: dict[str, object] = {"home": home if "://" in home else Path(home).absolute()}
        if env.get("TWH_DATABASE_URL"):
            values["database_url"] = env["TWH_DATABASE_URL"]
        if env.get("TWH_ENGINE"):
            values["engine"] = env["TWH_ENGINE"]
        for key, field in (("TWH_JOB_WALL_SECONDS", "job_wall_seconds"), ("TWH_JOB_MEMORY_MB", "job_memory_mb"),
                           ("TWH_AUTO_MIGRATE", "auto_migrate"), ("TWH_WORKER_ID", "worker_id"),
                           ("TWH_LEASE_SECONDS", "lease_seconds"), ("TWH_SPARK_MASTER", "spark_master"),
                           ("TWH_PUBLIC_URL", "public_url"), ("TWH_TRUSTED_PROXY", "trusted_proxy"),
                           ("TWH_TOKEN_TTL_DAYS", "token_ttl_days"), ("TWH_AUDIT_ANCHORS", "audit_anchors"),
                           ("TWH_AUDIT_SYSLOG", "audit_syslog"),
                           ("TWH_AUDIT_REFUSALS_PER_JOB", "audit_refusals_per_job"),
                           ("TWH_REQUIRE_CLASSIFICATION", "require_classification"),
                           ("TWH_SPARK_REMOTE", "spark_remote"), ("TWH_SPARK_CONNECT_TOKEN", "spark_connect_token"),
                           ("TWH_SPARK_AUTH_SECRET", "spark_auth_secret"),
                           ("TWH_LOCAL_SERVER", "local_server"),
                           ("TWH_LOCAL_SERVER_IDLE_MINUTES", "local_server_idle_minutes"),
                           ("TWH_STORAGE_URI", "storage_uri"), ("TWH_S3_ENDPOINT", "s3_endpoint"),
                           ("TWH_S3_REGION", "s3_region"), ("TWH_S3_ACCESS_KEY_ID", "s3_access_key_id"),
                           ("TWH_S3_SECRET_ACCESS_KEY", "s3_secret_access_key")):
            if env.get(key):
                values[field] = env[key]
        values.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls.model_validate(values)
        except InvalidInput:
            raise
        except Exception as exc:  # pydantic ValidationError -> our error, naming the field (never a value:
            # a secret setting that fails validation must not be echoed)
            errors = getattr(exc, "errors", list)()
            fields = sorted({".".join(str(p) for p in e.get("loc", ())) for e in errors})
            text = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in errors)
            raise InvalidInput(f"invalid settings: {text or type(exc).__name__}", details={"fields": fields}) from None
