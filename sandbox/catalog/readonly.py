"""Read-only access to a SQLite catalog over the standard library's driver, for quick reads.

    conn = open_readonly(home, database_url)     # None: open the warehouse instead
    role, tenant = user(conn, "analyst")         # NotFound, as the facade says it

``twh dataset list`` in local mode opened the whole warehouse to read three tables: SQLAlchemy
alone takes about 200 ms to import here, more than people wait for a listing. This reads the same
rows with ``sqlite3``, only when opening the warehouse would change nothing and record nothing:

* the catalog is SQLite in the home (no ``database_url``), and the file exists;
* the home exists and is private (otherwise opening it makes it 0700 and audits that);
* the catalog is at the code's head revision (otherwise opening it migrates it).

Anything else returns ``None``, and the caller goes through the facade as always. The connection
is opened read-only (``mode=ro``): nothing here can write the catalog.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from ..errors import NotFound

__all__ = ["head_from_files", "open_readonly", "user"]

MIGRATIONS = Path(__file__).parent / "migrations"


def head_from_files() -> str | None:
    """The head read from file names alone (revision ids count up: 0001, 0002, ...), or None
    when the names do not allow it (then the full Alembic check runs)."""
    ids = [p.name.split("_", 1)[0] for p in (MIGRATIONS / "versions").glob("*.py") if p.name != "__init__.py"]
    if not ids or not all(i.isdigit() for i in ids) or len(set(ids)) != len(ids):
        return None
    return max(ids, key=int)


def open_readonly(home: Path, database_url: str | None) -> sqlite3.Connection | None:
    """A read-only connection to the catalog when the facade would only read (see above)."""
    if database_url:
        return None
    try:
        st = home.stat()
    except OSError:
        return None
    if st.st_mode & 0o077:
        return None  # the facade makes it private and records that it was not
    path = home / "catalog.db"
    if not path.is_file():
        return None
    want = head_from_files()
    if want is None:
        return None
    try:
        conn = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True, timeout=30)
    except sqlite3.Error:
        return None
    try:
        have = [r[0] for r in conn.execute("SELECT version_num FROM alembic_version")]
    except sqlite3.Error:
        have = []
    if have != [want]:
        conn.close()
        return None
    return conn


def user(conn: sqlite3.Connection, name: str) -> tuple[str, str]:
    """``(role, tenant)`` of a named user, as :meth:`sandbox.access.users.Users.principal` finds it."""
    row = conn.execute("SELECT role, tenant FROM users WHERE name = ?", (name,)).fetchone()
    if row is None:
        raise NotFound(f"user {name!r} does not exist; add it with `twh user add`")
    return row[0], row[1]
