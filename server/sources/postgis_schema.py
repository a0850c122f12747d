"""The PostGIS store's schema side: the SQL shipped with the package, the catalog check, data versioning.

``load_sql``/``template`` read ``sql/<name>.sql`` (trusted files, composed with ``psycopg.sql``);
``problems`` compares the catalog with the columns found in the database (``onemap check``);
``install_versioning`` puts the version-bumping trigger on every collection table.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import psycopg
from psycopg import sql

from server.catalog import Catalog, VectorCollection

SQL_DIR = Path(__file__).parent / "sql"
VERSION_QUERY = "SELECT version FROM onemap_versions WHERE collection = %s"  # a collection's data version
COLUMN_TYPES = {
    "string": ("text", "character varying", "character"),
    "integer": ("bigint", "integer", "smallint"),
    "number": ("double precision", "real", "numeric", "bigint", "integer", "smallint"),
    "boolean": ("boolean",),
    "date": ("date",),
    "datetime": ("timestamp with time zone",),
}


@cache
def load_sql(name: str) -> str:
    """The statement of ``sql/<name>.sql``, without its whole-line comments (they document the file; sent
    with every statement they would only lengthen it, and a placeholder named in one would be filled)."""
    text = (SQL_DIR / f"{name}.sql").read_text(encoding="utf-8")
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--")).strip()


def template(name: str) -> sql.SQL:
    """``sql/<name>.sql`` as a ``psycopg.sql`` template (placeholders in braces)."""
    return sql.SQL(load_sql(name))  # trusted file shipped with the package


def problems(vectors: list[VectorCollection], rows: list[tuple], versioned: set[str]) -> list[str]:
    """Compare the catalog with the columns found in the database; one message per problem."""
    found: dict[str, dict[str, str]] = {}
    for table, exists, column, type_ in rows:
        cols = found.setdefault(table, {}) if exists else None
        if cols is not None and column is not None:
            cols[column] = type_
    issues: list[str] = []
    for c in vectors:
        src = c.source
        cols = found.get(src.table)
        if cols is None:
            issues.append(f"{c.id}: table '{src.table}' does not exist")
            continue
        issues += _column_problems(c, cols)
        if src.table not in versioned:
            issues.append(f"{c.id}: data versioning is not installed on '{src.table}' (run install_versioning)")
    return issues


def _column_problems(c: VectorCollection, cols: dict[str, str]) -> list[str]:
    """What is wrong with the geometry and field columns of ``c``'s table, whose columns are ``cols``."""
    src, issues = c.source, []
    geom_type = cols.get(src.geometry_field)
    if geom_type is None:
        issues.append(f"{c.id}: geometry column '{src.table}.{src.geometry_field}' does not exist")
    elif not geom_type.startswith("geometry"):
        issues.append(f"{c.id}: column '{src.table}.{src.geometry_field}' is {geom_type}, not a geometry")
    for f in c.fields:
        type_ = cols.get(f.name)
        if type_ is None:
            issues.append(f"{c.id}: column '{src.table}.{f.name}' does not exist")
        elif not type_.startswith(COLUMN_TYPES[f.type]):
            issues.append(f"{c.id}: column '{src.table}.{f.name}' is {type_}, expected {f.type}")
    return issues


def install_versioning(conn: psycopg.Connection, catalog: Catalog) -> list[str]:
    """Create ``onemap_versions`` and a version-bumping trigger on every existing collection table.

    Run after loading data: a table that had no trigger yet (new, or reloaded) gets one and its
    collection's version moves; a table already versioned keeps its version (its edits moved it),
    so running it again invalidates nothing. Returns the collection ids now versioned; collections
    whose table does not exist are skipped.
    """
    done: list[str] = []
    with conn.transaction():
        conn.execute(load_sql("versioning"))
        for c in catalog.of_kind(VectorCollection):
            exists = conn.execute("SELECT to_regclass(quote_ident(%s)) IS NOT NULL", [c.source.table]).fetchone()
            if not exists or not exists[0]:
                continue
            had = conn.execute(
                "SELECT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'onemap_version'"
                " AND tgrelid = to_regclass(quote_ident(%s)))", [c.source.table]
            ).fetchone() == (True,)
            conflict = sql.SQL("NOTHING" if had else "UPDATE SET version = v.version + 1")
            conn.execute(
                template("version_trigger").format(
                    table=sql.Identifier(c.source.table), collection=sql.Literal(c.id), on_conflict=conflict
                )
            )
            done.append(c.id)
    return done
