"""The provider's database: peewee models, connections and schema migrations.

Tables (timestamps are UNIX seconds, UTC)::

    meta              key/value: global pin, leases of periodic jobs
    schema_migration  applied migrations, one row per version
    host              enrolled (or pending) hosts, hashed credential, the release
                      assigned to the host (denormalised for a one-row poll)
    host_status       latest run per host (kept in the report's transaction;
                      indexed by status: the fleet overview reads only this)
    bootstrap_token   one-time enrolment tokens (hashed), bound to a host name
    release           releases found in storage, rollout ring and state
    release_host      the bundle digest of each host in each release
    run               one row per run report (report id is unique: idempotency)
    recipe_result     recipes of a run
    task_result       tasks of a run (flattened, with depth)
    log_line          agent log lines
    hook_delivery     report hook outbox, delivered by any replica
    event             audit trail of admin and rollout actions

Nothing lives only in one process: every replica reads and writes the same
tables, and periodic jobs take a lease in ``meta`` before they run.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable
from urllib.parse import unquote, urlparse

import peewee as pw

from tenfra.errors import ConfigError

logger = logging.getLogger(__name__)

db = pw.DatabaseProxy()
"""The database every model uses; bound by :func:`connect_database`."""


class BaseModel(pw.Model):
    class Meta:
        database = db
        legacy_table_names = False


class MetaValue(BaseModel):
    key = pw.CharField(max_length=100, primary_key=True)
    value = pw.TextField()

    class Meta:
        table_name = "meta"


class SchemaMigration(BaseModel):
    version = pw.IntegerField(primary_key=True)
    name = pw.CharField(max_length=200)
    applied = pw.DoubleField()


class Host(BaseModel):
    id = pw.AutoField()
    name = pw.CharField(max_length=253, unique=True)
    credential_hash = pw.CharField(max_length=64, null=True)
    approved = pw.BooleanField(default=False)  # the pending request is approved
    enrolled = pw.DoubleField(null=True)
    request_hash = pw.CharField(max_length=64, null=True)
    request_fingerprint = pw.CharField(max_length=64, null=True)
    requested = pw.DoubleField(null=True)
    pin = pw.CharField(max_length=100, null=True)
    target_name = pw.CharField(max_length=100, null=True)
    target_release = pw.CharField(max_length=100, null=True)
    target_sequence = pw.BigIntegerField(null=True)
    target_digest = pw.CharField(max_length=80, null=True)
    last_seen = pw.DoubleField(null=True)
    facts = pw.TextField(null=True)
    facts_at = pw.DoubleField(null=True)


class HostStatus(BaseModel):
    host = pw.CharField(max_length=253, primary_key=True)
    report_id = pw.CharField(max_length=100)
    started = pw.DoubleField()
    finished = pw.DoubleField()
    status = pw.CharField(max_length=20, index=True)
    release = pw.CharField(max_length=100, null=True)
    sequence = pw.BigIntegerField(null=True)
    changed = pw.IntegerField(default=0)
    failed = pw.IntegerField(default=0)
    check = pw.BooleanField(default=False)
    error = pw.TextField(null=True)
    received = pw.DoubleField()


class BootstrapToken(BaseModel):
    id = pw.AutoField()
    token_hash = pw.CharField(max_length=64, unique=True)
    host = pw.CharField(max_length=253, index=True)
    created = pw.DoubleField()
    expires = pw.DoubleField()
    used = pw.DoubleField(null=True)
    created_by = pw.CharField(max_length=100)


class Release(BaseModel):
    id = pw.AutoField()
    name = pw.CharField(max_length=100, unique=True)
    release_id = pw.CharField(max_length=80, index=True)
    sequence = pw.BigIntegerField(unique=True)
    created = pw.CharField(max_length=40)
    expires = pw.CharField(max_length=40, null=True)
    discovered = pw.DoubleField()
    host_count = pw.IntegerField()
    plugins = pw.TextField(default="{}")
    ring = pw.IntegerField(default=0)
    state = pw.CharField(max_length=20, index=True)
    state_reason = pw.TextField(null=True)
    changed_at = pw.DoubleField()


class ReleaseHost(BaseModel):
    id = pw.AutoField()
    release = pw.CharField(max_length=100)
    host = pw.CharField(max_length=253, index=True)
    digest = pw.CharField(max_length=80)

    class Meta:
        indexes = ((("release", "host"), True),)


class Run(BaseModel):
    id = pw.AutoField()
    report_id = pw.CharField(max_length=100, unique=True)
    host = pw.CharField(max_length=253)
    started = pw.DoubleField()
    finished = pw.DoubleField()
    received = pw.DoubleField(index=True)
    status = pw.CharField(max_length=20)
    release = pw.CharField(max_length=100, null=True)
    sequence = pw.BigIntegerField(null=True)
    check = pw.BooleanField(default=False)
    duration = pw.DoubleField(default=0.0)
    changed = pw.IntegerField(default=0)
    failed = pw.IntegerField(default=0)
    total = pw.IntegerField(default=0)
    error = pw.TextField(null=True)

    class Meta:
        indexes = ((("host", "finished"), False),)


class RecipeResult(BaseModel):
    id = pw.AutoField()
    run = pw.ForeignKeyField(Run, backref="recipes", on_delete="CASCADE", index=True)
    position = pw.IntegerField()
    recipe_id = pw.CharField(max_length=300)
    name = pw.CharField(max_length=300)
    status = pw.CharField(max_length=20)
    duration = pw.DoubleField(default=0.0)
    error = pw.TextField(null=True)


class TaskResult(BaseModel):
    id = pw.AutoField()
    run = pw.ForeignKeyField(Run, backref="tasks", on_delete="CASCADE", index=True)
    recipe_position = pw.IntegerField()
    position = pw.IntegerField()
    depth = pw.IntegerField(default=0)
    name = pw.CharField(max_length=500)
    type = pw.CharField(max_length=100)
    status = pw.CharField(max_length=20)
    changed = pw.BooleanField(default=False)
    duration = pw.DoubleField(default=0.0)
    diff = pw.TextField(null=True)
    error = pw.TextField(null=True)
    message = pw.TextField(null=True)
    location = pw.CharField(max_length=500, null=True)


class LogLine(BaseModel):
    id = pw.AutoField()
    host = pw.CharField(max_length=253)
    received = pw.DoubleField(index=True)
    time = pw.CharField(max_length=40, null=True)
    level = pw.CharField(max_length=20, null=True)
    message = pw.TextField()

    class Meta:
        indexes = ((("host", "received"), False),)


class HookDelivery(BaseModel):
    id = pw.AutoField()
    hook = pw.CharField(max_length=100)
    host = pw.CharField(max_length=253)
    report_id = pw.CharField(max_length=100)
    payload = pw.TextField()
    created = pw.DoubleField()
    attempts = pw.IntegerField(default=0)
    next_attempt = pw.DoubleField()
    claimed_until = pw.DoubleField(default=0.0)
    done = pw.BooleanField(default=False)
    last_error = pw.TextField(null=True)

    class Meta:
        indexes = ((("done", "next_attempt"), False), (("hook", "report_id"), True))


class Event(BaseModel):
    id = pw.AutoField()
    time = pw.DoubleField(index=True)
    actor = pw.CharField(max_length=100)
    action = pw.CharField(max_length=50)
    subject = pw.CharField(max_length=300)
    detail = pw.TextField(default="")


MODELS: list[type[BaseModel]] = [
    MetaValue,
    SchemaMigration,
    Host,
    HostStatus,
    BootstrapToken,
    Release,
    ReleaseHost,
    Run,
    RecipeResult,
    TaskResult,
    LogLine,
    HookDelivery,
    Event,
]


# -- connections -------------------------------------------------------------------


def make_database(
    url: str, *, busy_timeout: float = 5.0, max_connections: int = 8
) -> pw.Database:
    """A peewee database for ``sqlite:///PATH`` or ``postgresql://...``."""
    if url.startswith("sqlite://"):
        path = url[len("sqlite:///") :] if url.startswith("sqlite:///") else ":memory:"
        if url == "sqlite://:memory:":
            path = ":memory:"
        return pw.SqliteDatabase(
            path,
            timeout=busy_timeout,
            pragmas={
                "journal_mode": "wal",
                "synchronous": "normal",
                "foreign_keys": 1,
                "busy_timeout": int(busy_timeout * 1000),
                "cache_size": -16000,
            },
            check_same_thread=False,
        )
    if url.startswith(("postgresql://", "postgres://")):
        from playhouse.pool import PooledPostgresqlDatabase

        parsed = urlparse(url)
        name = unquote(parsed.path.lstrip("/"))
        if not name:
            raise ConfigError(
                f"database.url {url!r} names no database; add /DATABASE at the end."
            )
        kwargs: dict[str, Any] = {
            "host": parsed.hostname or "127.0.0.1",
            "port": parsed.port or 5432,
        }
        if parsed.username:
            kwargs["user"] = unquote(parsed.username)
        if parsed.password:
            kwargs["password"] = unquote(parsed.password)
        kwargs["connect_timeout"] = 10
        database: pw.Database = PooledPostgresqlDatabase(
            name,
            max_connections=max_connections,
            stale_timeout=300,
            timeout=30,
            **kwargs,
        )
        return database
    raise ConfigError(
        f"database.url {url!r} is not supported; use sqlite:///PATH or postgresql://."
    )


def connect_database(database: pw.Database) -> pw.Database:
    """Bind the models to ``database`` (one database per process)."""
    db.initialize(database)
    return database


def is_postgres() -> bool:
    return isinstance(db.obj, pw.PostgresqlDatabase)


def now() -> float:
    return time.time()


# -- meta values and leases --------------------------------------------------------


def get_meta(key: str, default: str | None = None) -> str | None:
    row = MetaValue.select(MetaValue.value).where(MetaValue.key == key).first()
    return str(row.value) if row is not None else default


def set_meta(key: str, value: str | None) -> None:
    if value is None:
        MetaValue.delete().where(MetaValue.key == key).execute()
        return
    (
        MetaValue.insert(key=key, value=value)
        .on_conflict(conflict_target=[MetaValue.key], update={MetaValue.value: value})
        .execute()
    )


def take_lease(name: str, seconds: float) -> bool:
    """Whether this process may run job ``name`` now; at most one replica wins.

    The lease is a ``meta`` row holding the time it expires; taking it is one
    conditional UPDATE, so two replicas can never both succeed.
    """
    key = f"lease:{name}"
    moment = now()
    MetaValue.insert(key=key, value="0").on_conflict_ignore().execute()
    updated = (
        MetaValue.update(value=repr(moment + seconds))
        .where((MetaValue.key == key) & (MetaValue.value.cast("float") <= moment))
        .execute()
    )
    return bool(updated)


# -- migrations --------------------------------------------------------------------


def _initial(database: pw.Database) -> None:
    database.create_tables(MODELS, safe=True)


MIGRATIONS: list[tuple[int, str, Callable[[pw.Database], None]]] = [
    (1, "initial schema", _initial),
]
SCHEMA_VERSION = MIGRATIONS[-1][0]


def current_version() -> int:
    if not db.table_exists(SchemaMigration._meta.table_name):
        return 0
    row = SchemaMigration.select(pw.fn.MAX(SchemaMigration.version)).scalar()
    return int(row or 0)


def migrate() -> list[str]:
    """Apply the missing migrations in order; safe to run from several replicas."""
    applied: list[str] = []
    database = db.obj
    if isinstance(database, pw.SqliteDatabase):
        context = database.atomic("IMMEDIATE")
    else:
        context = database.atomic()
    with context:
        if is_postgres():
            database.execute_sql("SELECT pg_advisory_xact_lock(%s)", (0x7E4F4A,))
        database.create_tables([SchemaMigration], safe=True)
        version = current_version()
        for number, name, function in MIGRATIONS:
            if number <= version:
                continue
            logger.info("applying database migration %d: %s", number, name)
            function(database)
            SchemaMigration.create(version=number, name=name, applied=now())
            applied.append(f"{number}: {name}")
    return applied


def check_schema() -> None:
    """Raise ConfigError when the database schema is older or newer than this code."""
    version = current_version()
    if version < SCHEMA_VERSION:
        raise ConfigError(
            f"The database schema is at version {version}, this provider needs "
            f"{SCHEMA_VERSION}; run 'tenfra provider migrate --config ...'."
        )
    if version > SCHEMA_VERSION:
        raise ConfigError(
            f"The database schema is at version {version}, newer than this provider "
            f"knows ({SCHEMA_VERSION}); upgrade tenfra on this replica."
        )
