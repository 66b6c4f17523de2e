"""Upgrade steps: the SQL that carries a plugin's data from one version to the next.

A package keeps ``migrations/up.sql`` / ``down.sql`` as the scripts that install its current
version from nothing and remove it entirely. Next to them, one folder per version that needs
its data carried forward::

    migrations/versions/1.1.0/up.sql            # portable SQL, from the version before to 1.1.0
    migrations/versions/1.1.0/mysql/up.sql      # optional override for one database

A step ``x.y.z`` runs when an installation goes from a version below ``x.y.z`` to one at or
above it; steps run in semver order, each once (``plugin_migrations`` records them with the
name ``upgrade``). They are written, parsed, transpiled and re-rendered exactly like
``up.sql`` (see :mod:`plugdock.plugin_sql.migrations`), and checked with rules of their own:

- allowed: ``CREATE TABLE`` (a new name), ``CREATE INDEX``, ``ALTER TABLE`` (columns and
  constraints; no ``RENAME TO``), ``INSERT`` / ``UPDATE`` / ``DELETE``, ``DROP TABLE`` /
  ``DROP INDEX`` — each only on the plugin's own tables: those of the installed version plus
  those earlier statements create. Every table a statement reads (sub-selects,
  ``INSERT ... SELECT``, ``UPDATE ... FROM``) must be the plugin's own too; a foreign key may
  reference any table, as in up.sql.
- ``DROP INDEX ix ON t`` names its table (MySQL needs it) unless an earlier statement created
  ``ix``; before it runs, plugdock checks that ``ix`` really is an index of the plugin's table.
- before a ``CREATE TABLE`` runs, plugdock checks that no table or view of that name exists,
  so ``CREATE TABLE IF NOT EXISTS users`` cannot adopt a table the plugin does not own.
- everything :mod:`plugdock.plugin_sql.migrations` refuses anywhere is refused here too.

On MariaDB/MySQL each schema change commits on its own, so a failed upgrade cannot simply be
rolled back: :func:`compensate_upgrade` drops the tables the steps created and says what
else stays. Put data changes (``UPDATE`` back-fills) after the schema changes of a step:
then a failure rolls them back on MariaDB too.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import semver
from sqlalchemy import Connection, Engine, create_engine, delete, inspect, select
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect

from plugdock.core.db import addon_installations, core_metadata, plugin_migrations
from plugdock.errors import PackageError, PlugdockError
from plugdock.package.metadata import parse_version
from plugdock.plugin_sql.migrations import (
    _ALTER_ACTIONS,
    _ALTER_DROPS,
    _SQLGLOT,
    _check_create_index,
    _check_create_table,
    _check_everywhere,
    _check_kind,
    _check_target,
    _execute,
    _name,
    _Owned,
    _pick_file,
    _refuse,
    _render,
    _split,
    _SqlFile,
    _Statement,
    _target,
    load_migration,
    transactional_ddl,
)

_STEP_RULE = "a step may only change the plugin's own tables"

__all__ = [
    "STEP_NAME",
    "UpgradeStep",
    "UpgradeStepError",
    "applied_upgrade_steps",
    "apply_upgrade_steps",
    "check_steps",
    "check_upgrade_schema",
    "compensate_upgrade",
    "load_upgrade_steps",
    "resulting_tables",
    "step_versions",
]

#: ``plugin_migrations.name`` of an upgrade step (the install script is ``initial``).
STEP_NAME = "upgrade"
STEPS_DIR = "versions"
_STEP_KINDS = (
    "CREATE TABLE",
    "CREATE INDEX",
    "ALTER TABLE",
    "INSERT",
    "UPDATE",
    "DELETE",
    "DROP TABLE",
    "DROP INDEX",
)
_DML = ("INSERT", "UPDATE", "DELETE")
_CORE_TABLES = frozenset(core_metadata.tables)


class _Guard(NamedTuple):
    """A check made against the live database right before one statement runs."""

    kind: str  # "create table" or "drop index"
    name: str  # the table created, or the index dropped
    tables: tuple[str, ...] = ()  # drop index: the plugin's tables it may belong to


@dataclass(frozen=True)
class UpgradeStep:
    """One checked upgrade step, rendered for one database."""

    version: str  # the step's target version
    statements: tuple[str, ...]  # rendered for the target dialect, checked
    created: tuple[str, ...]  # tables this step creates
    dropped: tuple[str, ...]  # tables this step drops (that existed before it)
    checksum: str  # sha256 of the step's SQL file
    guards: tuple[_Guard | None, ...] = field(default=(), compare=False, repr=False)


class UpgradeStepError(PlugdockError):
    """A step's statement failed on the database (the cause is chained)."""

    def __init__(self, version: str, statement: str, cause: BaseException) -> None:
        self.version = version
        self.statement = statement
        short = " ".join(statement.split())
        short = short if len(short) <= 120 else short[:117] + "..."
        reason = str(getattr(cause, "orig", None) or cause).strip().splitlines()
        super().__init__(
            f"upgrade step {version} failed at {short!r}: {reason[0] if reason else cause}"
        )


# ---------------------------------------------------------------- finding the steps


def step_versions(migrations_dir: Path | None) -> list[str]:
    """The versions that have a step folder under ``migrations/versions/``, in semver order.

    Raises PackageError for a folder name that is not a plain semantic version, and for
    anything in a step folder other than ``up.sql`` and ``<dialect>/up.sql``.
    """
    if migrations_dir is None:
        return []
    root = migrations_dir / STEPS_DIR
    if not root.exists():
        return []
    if not root.is_dir() or root.is_symlink():
        raise PackageError("migrations/versions is not a folder")
    problems: list[str] = []
    found: list[tuple[semver.Version, str]] = []
    for entry in sorted(root.iterdir()):
        label = f"migrations/{STEPS_DIR}/{entry.name}"
        try:
            version = parse_version(entry.name)
        except ValueError as error:
            problems.append(f"{label}: {error} (a step folder is named after its version)")
            continue
        if version.build or str(version) != entry.name:
            problems.append(f"{label}: write the version plainly, like 1.2.3")
            continue
        if not entry.is_dir() or entry.is_symlink():
            problems.append(f"{label} is not a folder")
            continue
        problems += _step_folder_problems(entry, label)
        found.append((version, entry.name))
    if problems:
        raise PackageError(problems)
    return [name for _, name in sorted(found)]


def _step_folder_problems(folder: Path, label: str) -> list[str]:
    problems = []
    for entry in sorted(folder.iterdir()):
        if entry.name == "up.sql" and entry.is_file():
            continue
        if entry.name in {*_SQLGLOT, "mariadb"} and entry.is_dir() and not entry.is_symlink():
            extra = [p.name for p in entry.iterdir() if p.name != "up.sql"]
            problems += [f"{label}/{entry.name}/{name}: only up.sql belongs here" for name in extra]
            continue
        why = "a step has no down.sql: downgrades are refused" if entry.name == "down.sql" else ""
        problems.append(
            f"{label}/{entry.name}: not allowed in a step folder "
            f"(up.sql and sqlite/, postgresql/, mysql/ overrides only){'; ' + why if why else ''}"
        )
    candidates = [folder / "up.sql", *(folder / d / "up.sql" for d in (*_SQLGLOT, "mariadb"))]
    if not any(path.is_file() for path in candidates):
        problems.append(f"{label}: has no up.sql")
    return problems


def _semver(version: str) -> semver.Version:
    try:
        return parse_version(version)
    except ValueError as error:
        raise PackageError(str(error)) from None


# ---------------------------------------------------------------- loading and checking


def load_upgrade_steps(
    migrations_dir: Path,
    dialect: str,
    *,
    from_version: str,
    to_version: str,
    owned_tables: Iterable[str],
    applied: set[str] | None = None,
) -> list[UpgradeStep]:
    """The checked steps with ``from_version < v <= to_version``, in semver order.

    ``owned_tables`` are the installed version's tables (its installation row); steps may
    touch only those and the ones earlier steps create. Steps whose version is in
    ``applied`` (see :func:`applied_upgrade_steps`) are checked, for the tables they leave,
    but not returned::

        steps = load_upgrade_steps(staged / "migrations", dialect_name(engine),
                                   from_version="1.0.0", to_version="1.1.0",
                                   owned_tables=row.tables)

    Raises ``UnsafeSqlError`` naming the file and statement, or ``PackageError``.
    """
    return _load(
        migrations_dir,
        dialect,
        from_version=from_version,
        to_version=to_version,
        owned_tables=owned_tables,
        applied=applied or set(),
        assume_owned=False,
    )


def _load(
    migrations_dir: Path,
    dialect: str,
    *,
    from_version: str | None,
    to_version: str,
    owned_tables: Iterable[str],
    applied: set[str],
    assume_owned: bool,
) -> list[UpgradeStep]:
    target = _target(dialect)
    low = None if from_version is None else _semver(from_version)
    high = _semver(to_version)
    if low is not None and low >= high:
        raise PackageError(
            f"cannot upgrade from {from_version} to {to_version}: not a newer version"
        )
    owned = _Owned(tables=[t.lower() for t in owned_tables])
    steps = []
    for version in step_versions(migrations_dir):
        parsed = _semver(version)
        if (low is not None and parsed <= low) or parsed > high:
            continue
        step = _load_step(migrations_dir, version, target, owned, assume_owned)
        if version not in applied:
            steps.append(step)
    return steps


def _load_step(
    migrations_dir: Path, version: str, target: str, owned: _Owned, assume_owned: bool
) -> UpgradeStep:
    folder = migrations_dir / STEPS_DIR / version
    file = _pick_file(folder, target, "up.sql", label_root=migrations_dir.parent)
    if file is None:
        raise PackageError(f"migrations/{STEPS_DIR}/{version} has no up.sql")
    before = set(owned.tables)
    guards, rendered = [], []
    for st in _split(file):
        guard = _check_step_statement(st, file, owned, assume_owned)
        rendered.append(_render(st, file, target, owned))  # MySQL's DROP INDEX reads owned
        if guard is not None and guard.kind == "drop index":
            owned.indexes.pop(guard.name, None)
        guards.append(guard)
    after = set(owned.tables)
    created = tuple(t for t in owned.tables if t not in before)
    dropped = tuple(sorted(before - after))
    checksum = hashlib.sha256(file.text.encode()).hexdigest()
    return UpgradeStep(version, tuple(rendered), created, dropped, checksum, tuple(guards))


def _check_step_statement(
    st: _Statement, file: _SqlFile, owned: _Owned, assume_owned: bool
) -> _Guard | None:
    """Check one statement against the upgrade rules and update ``owned`` for the next one."""
    label = file.label
    kind = _check_kind(st, label, _STEP_KINDS)
    _check_everywhere(st, label)
    e = st.expr
    if assume_owned:
        _assume_owned(e, kind, owned)
    guard = None
    allowed = set(owned.tables)
    if kind == "CREATE TABLE":
        name = _check_create_table(st, label)
        if name in _CORE_TABLES:
            _refuse(label, st, f"'{name}' is one of plugdock's own tables")
        if name in owned.tables:
            _refuse(label, st, f"table '{name}' already belongs to the plugin")
        owned.tables.append(name)
        allowed.add(name)
        guard = _Guard("create table", name)
    elif kind == "CREATE INDEX":
        index, table = _check_create_index(st, label, owned)
        owned.indexes[index] = table
    elif kind == "ALTER TABLE":
        _check_target(st, label, e.this, owned, "ALTER TABLE", _STEP_RULE)
        for action in e.args.get("actions") or []:
            if isinstance(action, exp.Drop) and action.kind in _ALTER_DROPS:
                continue
            if not isinstance(action, _ALTER_ACTIONS):
                reason = f"ALTER TABLE action {action.sql()!r} is not allowed"
                if isinstance(action, exp.AlterRename):
                    reason += " (create a new table and copy the rows instead of renaming)"
                _refuse(label, st, reason)
    elif kind in _DML:
        verb = {"INSERT": "INSERT INTO", "UPDATE": "UPDATE", "DELETE": "DELETE FROM"}[kind]
        _check_target(st, label, e.this, owned, verb, _STEP_RULE)
    elif kind == "DROP TABLE":
        for table in e.args.get("tables") or []:
            name = _name(table)
            if name not in owned.tables:
                _refuse(label, st, f"may only drop the plugin's own tables, not '{name}'")
            owned.tables.remove(name)
            for index in [i for i, t in owned.indexes.items() if t == name]:
                del owned.indexes[index]
    else:  # DROP INDEX
        guard = _check_drop_index(st, file, owned)
        allowed.add(guard.name)
    _check_reads(st, label, allowed)
    return guard


def _assume_owned(e: exp.Expr, kind: str, owned: _Owned) -> None:
    """Without the installed version's tables (validate), any non-core table may be the plugin's."""
    created = None
    if kind == "CREATE TABLE" and isinstance(e.this, exp.Schema | exp.Table):
        created = _name(e.this.this if isinstance(e.this, exp.Schema) else e.this)
    for table in e.find_all(exp.Table):
        name = _name(table)
        if name in _CORE_TABLES or name == created or table.find_ancestor(exp.Reference):
            continue
        if isinstance(table.parent, exp.Drop) and kind != "DROP TABLE":
            continue  # an index or constraint name, not a table
        if name not in owned.tables:
            owned.tables.append(name)


def _check_drop_index(st: _Statement, file: _SqlFile, owned: _Owned) -> _Guard:
    e = st.expr
    indexes = e.args.get("tables") or []
    if len(indexes) != 1:
        _refuse(file.label, st, "drop one index per statement")
    index = _name(indexes[0])
    on = e.args.get("cluster")
    if isinstance(on, exp.OnProperty) and isinstance(on.this, exp.Table):
        table = _name(on.this)
        if table not in owned.tables:
            _refuse(
                file.label,
                st,
                f"may only drop indexes of the plugin's own tables, not of '{table}'",
            )
        owned.indexes[index] = table
        return _Guard("drop index", index, (table,))
    if index in owned.indexes:
        return _Guard("drop index", index, (owned.indexes[index],))
    if not file.portable and file.read != "mysql":
        # A PostgreSQL or SQLite override cannot name the table: it is looked for when it runs.
        return _Guard("drop index", index, tuple(owned.tables))
    _refuse(file.label, st, f"write DROP INDEX {index} ON <table>: MySQL needs the index's table")


def _check_reads(st: _Statement, file: str, allowed: set[str]) -> None:
    """Every table a statement names must be the plugin's own, except a foreign key's target."""
    for table in st.expr.find_all(exp.Table):
        if table.find_ancestor(exp.Reference):
            continue
        # ALTER TABLE ... DROP CONSTRAINT/INDEX name: a Table node holding a constraint.
        if isinstance(table.parent, exp.Drop) and isinstance(table.parent.parent, exp.Alter):
            continue
        if not isinstance(table.this, exp.Identifier):
            _refuse(file, st, f"table expression '{table.sql()}' is not allowed")
        name = _name(table)
        if name not in allowed:
            _refuse(file, st, f"table '{name}' is not one of the plugin's own tables")


def resulting_tables(owned_tables: Iterable[str], steps: Iterable[UpgradeStep]) -> list[str]:
    """The plugin's tables after ``steps`` ran on an installation owning ``owned_tables``."""
    tables = [t.lower() for t in owned_tables]
    for step in steps:
        tables = [t for t in tables if t not in step.dropped]
        tables += [t for t in step.created if t not in tables]
    return tables


def check_steps(migrations_dir: Path, package_version: str) -> list[str]:
    """Check every step of a package on all three databases; return the step versions.

    For ``plugdock validate``, which does not know the tables of the versions before: any
    table but plugdock's own counts as the plugin's here (the install-time check knows
    better). Step versions must not be above ``package_version``.
    """
    versions = step_versions(migrations_dir)
    top = _semver(package_version)
    above = [v for v in versions if _semver(v) > top]
    if above:
        raise PackageError(
            [
                f"migrations/{STEPS_DIR}/{v}: is above the package version {package_version}"
                for v in above
            ]
        )
    for dialect in _SQLGLOT:
        _load(
            migrations_dir,
            dialect,
            from_version=None,
            to_version=package_version,
            owned_tables=(),
            applied=set(),
            assume_owned=True,
        )
    return versions


# ---------------------------------------------------------------- running


def applied_upgrade_steps(conn: Connection, plugin_id: str) -> set[str]:
    """Versions of the upgrade steps recorded for ``plugin_id``."""
    query = select(plugin_migrations.c.version).where(
        plugin_migrations.c.plugin_id == plugin_id, plugin_migrations.c.name == STEP_NAME
    )
    return set(conn.execute(query).scalars())


def apply_upgrade_steps(conn: Connection, plugin_id: str, steps: list[UpgradeStep]) -> None:
    """Run ``steps`` on ``conn`` and record each in ``plugin_migrations``.

    The caller owns (and commits or rolls back) the transaction. Before a ``CREATE TABLE``
    plugdock checks the name is free, before a ``DROP INDEX`` that the index is the plugin's
    (PackageError). A failing statement raises :class:`UpgradeStepError`.
    """
    for step in steps:
        _run_step(conn, step)
        conn.execute(
            plugin_migrations.insert().values(
                plugin_id=plugin_id,
                version=step.version,
                name=STEP_NAME,
                checksum=step.checksum,
                applied_at=datetime.now(UTC).replace(tzinfo=None),
                statements=json.dumps(list(step.statements)),
            )
        )


def _run_step(conn: Connection, step: UpgradeStep) -> None:
    guards = step.guards or (None,) * len(step.statements)
    for statement, guard in zip(step.statements, guards, strict=True):
        if guard is not None:
            _check_guard(conn, step.version, guard)
        try:
            _execute(conn, statement)
        except Exception as error:  # the database's own error, made readable
            raise UpgradeStepError(step.version, statement, error) from error


def _check_guard(conn: Connection, version: str, guard: _Guard) -> None:
    inspector = inspect(conn)  # a fresh one: it caches what it read
    if guard.kind == "create table":
        existing = {n.lower() for n in inspector.get_table_names() + inspector.get_view_names()}
        if guard.name in existing:
            raise PackageError(
                f"upgrade step {version}: table '{guard.name}' already exists in the database; "
                "a step may only create new tables"
            )
        return
    existing_tables = {n.lower(): n for n in inspector.get_table_names()}
    for table in guard.tables:
        if table in existing_tables:
            names = {
                (i["name"] or "").lower() for i in inspector.get_indexes(existing_tables[table])
            }
            if guard.name in names:
                return
    raise PackageError(
        f"upgrade step {version}: index '{guard.name}' is not an index of the plugin's tables "
        f"({', '.join(guard.tables) or 'none'})"
    )


# ---------------------------------------------------------------- MariaDB compensation


def compensate_upgrade(engine: Engine, plugin_id: str, steps: list[UpgradeStep]) -> list[str]:
    """Undo what a failed upgrade left on a database without transactional DDL (MariaDB).

    Drops the tables the steps create (whichever exist now, newest first; never a core
    table or one another installed plugin owns) and deletes the steps' ``plugin_migrations``
    rows. Returns sentences saying what could not be undone, ``[]`` when everything was.
    Call it after the upgrade's transaction was rolled back (or after a crash).
    """
    created: list[tuple[str, str]] = []  # (table, step version)
    for step in steps:
        created += [(t, step.version) for t in step.created]
    new_tables = {t for t, _ in created}
    stays: list[str] = []
    with engine.begin() as conn:
        others = _tables_of_other_plugins(conn, plugin_id)
        existing = {n.lower(): n for n in inspect(conn).get_table_names()}
        for table, version in reversed(created):
            if table not in existing:
                continue
            if table in _CORE_TABLES or table in others:
                stays.append(
                    f"table {table} (step {version}) was not dropped: it is not the plugin's"
                )
                continue
            quoted = conn.dialect.identifier_preparer.quote(existing[table])
            _execute(conn, f"DROP TABLE {quoted}")
        if steps:
            conn.execute(
                delete(plugin_migrations).where(
                    plugin_migrations.c.plugin_id == plugin_id,
                    plugin_migrations.c.name == STEP_NAME,
                    plugin_migrations.c.version.in_([s.version for s in steps]),
                )
            )
    if not transactional_ddl(engine):  # elsewhere the rollback undid everything else
        with engine.connect() as conn:
            stays += _what_stays(conn, steps, new_tables)
    return stays


def _tables_of_other_plugins(conn: Connection, plugin_id: str) -> set[str]:
    rows = conn.execute(
        select(addon_installations.c.tables).where(addon_installations.c.plugin_id != plugin_id)
    )
    return {str(t).lower() for (tables,) in rows for t in (tables or [])}


def _what_stays(conn: Connection, steps: list[UpgradeStep], new_tables: set[str]) -> list[str]:
    """Sentences for the changes to the plugin's older tables that are visible now."""
    dialect = Dialect.get_or_raise(_SQLGLOT[_target(conn.dialect.name)])
    inspector = inspect(conn)
    tables = {n.lower(): n for n in inspector.get_table_names()}

    def columns(table: str) -> set[str]:
        return (
            {c["name"].lower() for c in inspector.get_columns(tables[table])}
            if table in tables
            else set()
        )

    def indexes(table: str) -> set[str]:
        return (
            {(i["name"] or "").lower() for i in inspector.get_indexes(tables[table])}
            if table in tables
            else set()
        )

    parsed = [(step, dialect.parse(sql)[0], sql) for step in steps for sql in step.statements]
    sentences = []
    for position, (step, tree, sql) in enumerate(parsed):
        where = f"(step {step.version})"
        short = " ".join(sql.split())
        short = short if len(short) <= 100 else short[:97] + "..."
        if isinstance(tree, exp.Alter):
            table = _name(tree.this)
            if table in new_tables:
                continue
            for action in tree.args.get("actions") or []:
                if isinstance(action, exp.ColumnDef):
                    if action.name.lower() in columns(table):
                        sentences.append(
                            f"ALTER TABLE {table} ADD COLUMN {action.name} stays {where}"
                        )
                elif isinstance(action, exp.Drop) and action.kind == "COLUMN":
                    column = _name(action.this) if isinstance(action.this, exp.Expr) else ""
                    if column and column not in columns(table):
                        sentences.append(
                            f"column {table}.{column} was dropped and its data is gone {where}"
                        )
                elif isinstance(action, exp.RenameColumn):
                    if action.args["to"].name.lower() in columns(table):
                        sentences.append(
                            f"ALTER TABLE {table} RENAME COLUMN {action.this.name} stays {where}"
                        )
                else:
                    sentences.append(f"{action.sql()!r} on {table} may stay {where}")
        elif isinstance(tree, exp.Create) and tree.kind == "INDEX":
            index = tree.this
            table = _name(index.args["table"])
            if table not in new_tables and index.name.lower() in indexes(table):
                sentences.append(f"index {index.name.lower()} on {table} stays {where}")
        elif isinstance(tree, exp.Drop) and tree.kind == "TABLE":
            for table_node in tree.args.get("tables") or []:
                table = _name(table_node)
                if table not in new_tables and table not in tables:
                    sentences.append(f"table {table} was dropped and its rows are gone {where}")
        elif isinstance(tree, exp.Drop) and tree.kind == "INDEX":
            index = _name(tree.args["tables"][0])
            guard = _guard_for(step, sql)
            owners = [t for t in (guard.tables if guard else ()) if t not in new_tables]
            if owners and not any(index in indexes(t) for t in owners):
                sentences.append(f"index {index} was dropped {where}")
        elif isinstance(tree, exp.Insert | exp.Update | exp.Delete):
            table_node = tree.this.this if isinstance(tree.this, exp.Schema) else tree.this
            if _name(table_node) in new_tables:
                continue
            later_ddl = any(
                not isinstance(t, exp.Insert | exp.Update | exp.Delete)
                for _, t, _ in parsed[position + 1 :]
            )
            if later_ddl:
                sentences.append(
                    f"rows changed by {short!r} may stay {where}: MariaDB commits them "
                    "at the next schema change"
                )
    return sentences


def _guard_for(step: UpgradeStep, statement: str) -> _Guard | None:
    for sql, guard in zip(step.statements, step.guards or (), strict=False):
        if sql == statement:
            return guard
    return None


# ---------------------------------------------------------------- schema equivalence


def check_upgrade_schema(
    old_migrations_dir: Path, new_migrations_dir: Path, from_version: str, to_version: str
) -> None:
    """Upgrading must give the schema a fresh install gives; PackageError with the diff if not.

    On in-memory SQLite: the old version's up.sql, then the new package's steps
    ``(from_version, to_version]``, compared with the new up.sql run on an empty database
    (tables; columns with type, nullability, default and primary key; indexes; foreign keys).
    """
    old = load_migration(old_migrations_dir, "sqlite")
    steps = load_upgrade_steps(
        new_migrations_dir,
        "sqlite",
        from_version=from_version,
        to_version=to_version,
        owned_tables=old.tables,
    )
    new = load_migration(new_migrations_dir, "sqlite")
    upgraded = _schema_after(list(old.up), steps)
    fresh = _schema_after(list(new.up), [])
    problems = _schema_diff(upgraded, fresh)
    expected = sorted(new.tables)
    if not problems and sorted(resulting_tables(old.tables, steps)) != expected:
        problems.append(
            f"the steps leave the plugin owning {sorted(resulting_tables(old.tables, steps))}, "
            f"a fresh install owns {expected}"
        )
    if problems:
        raise PackageError(
            [
                f"upgrading {from_version} → {to_version} differs from a fresh install: {p}"
                for p in problems
            ]
        )


_Schema = dict[str, dict[str, Any]]


def _schema_after(statements: list[str], steps: list[UpgradeStep]) -> _Schema:
    engine = create_engine("sqlite://")
    try:
        with engine.begin() as conn:
            for statement in statements:
                _execute(conn, statement)
            for step in steps:
                try:
                    _run_step(conn, step)
                except UpgradeStepError as error:
                    raise PackageError(f"on SQLite, {error}") from None
            return _snapshot(conn)
    finally:
        engine.dispose()


def _snapshot(conn: Connection) -> _Schema:
    inspector = inspect(conn)
    schema: _Schema = {}
    for table in inspector.get_table_names():
        pk = set(inspector.get_pk_constraint(table).get("constrained_columns") or [])
        schema[table.lower()] = {
            "columns": {
                c["name"].lower(): (
                    str(c["type"]).upper(),
                    "NULL" if c["nullable"] else "NOT NULL",
                    f"DEFAULT {c['default']}" if c.get("default") is not None else "no default",
                    "PRIMARY KEY" if c["name"] in pk else "",
                )
                for c in inspector.get_columns(table)
            },
            "indexes": {
                (i["name"] or "").lower(): (
                    "UNIQUE" if i["unique"] else "",
                    tuple(str(c).lower() for c in i["column_names"]),
                )
                for i in inspector.get_indexes(table)
            },
            "foreign keys": sorted(
                (
                    tuple(c.lower() for c in fk["constrained_columns"]),
                    fk["referred_table"].lower(),
                    tuple(c.lower() for c in fk["referred_columns"]),
                    str(sorted((fk.get("options") or {}).items())),
                )
                for fk in inspector.get_foreign_keys(table)
            ),
            "unique constraints": sorted(
                tuple(c.lower() for c in u["column_names"])
                for u in inspector.get_unique_constraints(table)
            ),
        }
    return schema


def _schema_diff(upgraded: _Schema, fresh: _Schema) -> list[str]:
    problems = []
    for table in sorted(set(upgraded) | set(fresh)):
        if table not in fresh:
            problems.append(f"table {table} exists only after the upgrade")
            continue
        if table not in upgraded:
            problems.append(f"table {table} exists only in a fresh install")
            continue
        for part in ("columns", "indexes"):
            ours, theirs = upgraded[table][part], fresh[table][part]
            for name in sorted(set(ours) | set(theirs)):
                label = f"table {table}, {part[:-1] if part == 'columns' else 'index'} {name}"
                if name not in theirs:
                    problems.append(f"{label} exists only after the upgrade")
                elif name not in ours:
                    problems.append(f"{label} exists only in a fresh install")
                elif ours[name] != theirs[name]:
                    problems.append(
                        f"{label}: upgrade gives {_show(ours[name])}, "
                        f"fresh install gives {_show(theirs[name])}"
                    )
        for part in ("foreign keys", "unique constraints"):
            if upgraded[table][part] != fresh[table][part]:
                problems.append(
                    f"table {table}, {part}: upgrade gives {upgraded[table][part]}, "
                    f"fresh install gives {fresh[table][part]}"
                )
    return problems


def _show(value: tuple[Any, ...]) -> str:
    return " ".join(str(v) for v in value if v) or "(nothing)"
