"""Storage locations are URIs: ``file:///abs/path`` on local disk, ``s3://bucket/key`` on object storage.

    loc = to_location("s3://twh/tables/market/loans", store)   # store: the ObjectStore of Settings
    loc.uri, loc.is_local, loc.name, loc.delta_options()      # what delta-rs is handed
    to_path("file:///srv/wh")                                  # local paths only (the home, scratch)

The catalog records each table's location as a URI (``Dataset.table_path``); this module and
:mod:`sandbox.tables.storage` turn it into something a Delta reader or writer can open. Object
storage credentials live in :class:`ObjectStore`, built from ``Settings`` only: never in a URI,
never in a ``repr``, never in an error message. Other schemes (``hdfs``, ``gs``, ``http``, ...)
are refused (fail closed). Commits to object storage are serialised by the warehouse (see
ARCHITECTURE.md, "Storage locations": a store need not honour ``If-None-Match``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

from ..errors import InvalidInput

SUPPORTED_SCHEMES = ("file", "s3")
#: S3 bucket names (the rules every S3-compatible store accepts: lower case, 3-63 characters)
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
#: object key segments we create or accept: no empty, dot or control segments
_SEGMENT_RE = re.compile(r"^[A-Za-z0-9_.=+-]{1,255}$")


@dataclass(frozen=True)
class ObjectStore:
    """An S3-compatible object store: endpoint and credentials (from ``Settings``; never logged)."""

    access_key_id: str = field(repr=False)
    secret_access_key: str = field(repr=False)
    #: ``http(s)://host:port`` of an S3-compatible server; empty for AWS itself
    endpoint: str = ""
    region: str = "us-east-1"

    @property
    def allow_http(self) -> bool:
        return self.endpoint.lower().startswith("http://")

    def delta_options(self) -> dict[str, str]:
        """delta-rs ``storage_options``."""
        opts = {"AWS_ACCESS_KEY_ID": self.access_key_id, "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
                "AWS_REGION": self.region}
        if self.endpoint:
            opts["AWS_ENDPOINT_URL"] = self.endpoint
            opts["AWS_VIRTUAL_HOSTED_STYLE_REQUEST"] = "false"
        if self.allow_http:
            opts["AWS_ALLOW_HTTP"] = "true"
        return opts

    def hadoop_conf(self) -> dict[str, str]:
        """S3A settings (Hadoop configuration keys, no ``spark.hadoop.`` prefix), credentials included:
        a Spark driver gets them at run time or from a private properties file, never on a command line.
        ``s3://`` is mapped to S3A, so both engines open the very URI the catalog records."""
        conf = {"fs.s3.impl": "org.apache.hadoop.fs.s3a.S3AFileSystem",
                "fs.s3a.access.key": self.access_key_id, "fs.s3a.secret.key": self.secret_access_key,
                "fs.s3a.endpoint.region": self.region,
                "fs.s3a.aws.credentials.provider": "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider"}
        if self.endpoint:
            conf["fs.s3a.endpoint"] = self.endpoint
            conf["fs.s3a.path.style.access"] = "true"
            conf["fs.s3a.connection.ssl.enabled"] = "false" if self.allow_http else "true"
        return conf

    @property
    def secrets(self) -> tuple[str, ...]:
        """The values that must never appear in a log, an error, the audit or a sandbox (tests check)."""
        return (self.secret_access_key,)


@dataclass(frozen=True)
class Location:
    """One storage location: its URI (what the catalog records) and, for object storage, its store."""

    uri: str
    store: ObjectStore | None = field(default=None, repr=False, compare=False)

    @property
    def scheme(self) -> str:
        return urlsplit(self.uri).scheme

    @property
    def is_local(self) -> bool:
        return self.scheme == "file"

    @property
    def path(self) -> Path:
        """The local path of a ``file://`` location (refused for object storage)."""
        return to_path(self.uri)

    @property
    def name(self) -> str:
        """The last segment (a table's dataset name): safe to show, names no host path."""
        return PurePosixPath(urlsplit(self.uri).path).name

    def child(self, *parts: str) -> Location:
        for p in parts:
            if not _SEGMENT_RE.match(p) or p in (".", ".."):
                raise InvalidInput(f"invalid location segment {p[:40]!r}", details={"field": "location"})
        return Location(self.uri.rstrip("/") + "/" + "/".join(parts), self.store)

    def delta_options(self) -> dict[str, str] | None:
        return self.store.delta_options() if self.store is not None else None

    def __str__(self) -> str:
        return self.uri


def to_uri(location: str | Path) -> str:
    """``/a/b`` or ``file:///a/b`` -> ``file:///a/b`` (absolute, normalised); ``s3://`` URIs as given."""
    if isinstance(location, str) and location.startswith("s3://"):
        return _check_s3(location)
    return to_path(location).as_uri()


def to_path(location: str | Path) -> Path:
    """A local path for a ``file://`` URI or a plain path; object storage and other schemes are refused."""
    if isinstance(location, Path):
        return location.absolute()
    text = str(location)
    if "://" not in text:
        return Path(text).absolute()
    parts = urlsplit(text)
    if parts.scheme == "s3":
        raise InvalidInput("this location must be a local path or a file:// URI, not object storage",
                           details={"field": "location"})
    if parts.scheme not in SUPPORTED_SCHEMES:
        raise InvalidInput(f"storage scheme {parts.scheme[:20]!r} is not supported (use file:// or s3://)",
                           details={"field": "location"})
    if parts.netloc not in ("", "localhost"):
        raise InvalidInput("file:// URIs must name a local path (file:///...)", details={"field": "location"})
    return Path(unquote(parts.path)).absolute()


def _check_s3(uri: str) -> str:
    parts = urlsplit(uri)
    if parts.query or parts.fragment or "@" in parts.netloc or ":" in parts.netloc:
        raise InvalidInput("s3:// URIs name a bucket and a key only (credentials belong in Settings)",
                           details={"field": "location"})
    if not _BUCKET_RE.match(parts.netloc) or ".." in parts.netloc:
        raise InvalidInput(f"invalid S3 bucket name {parts.netloc[:70]!r} (3-63 characters: a-z, 0-9, '.', '-')",
                           details={"field": "location"})
    segments = [s for s in parts.path.split("/") if s]
    if any(not _SEGMENT_RE.match(s) or s in (".", "..") for s in segments):
        raise InvalidInput("invalid S3 key in the location", details={"field": "location"})
    return f"s3://{parts.netloc}" + ("/" + "/".join(segments) if segments else "")


def to_location(location: str | Path | Location, store: ObjectStore | None = None) -> Location:
    """A :class:`Location` for a path, a ``file://`` URI or an ``s3://`` URI (which needs ``store``)."""
    if isinstance(location, Location):
        if location.store is None and store is not None and not location.is_local:
            return Location(location.uri, store)
        return location
    if isinstance(location, str) and "://" in location and urlsplit(location).scheme == "s3":
        uri = _check_s3(location)
        if store is None:
            raise InvalidInput("s3:// tables need an object store in Settings (TWH_S3_ENDPOINT, "
                               "TWH_S3_ACCESS_KEY_ID, TWH_S3_SECRET_ACCESS_KEY)", details={"field": "location"})
        return Location(uri, store)
    return Location(to_path(location).as_uri())
