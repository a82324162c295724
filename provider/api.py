"""The agent API under ``/api/v1``: enrolment, releases, bundles, assets and reports.

Every route but ``enroll`` needs ``Authorization: Bearer <host>.<secret>``.
The host is taken from the credential, so a host can only ever read and write
its own data; a request that names another host (``?host=`` or a ``host``
field in the body) is refused with 403.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import weakref
from typing import Any, Optional, Union

import attrs
from flask import Blueprint, Response, g, jsonify, request

from tenfra.errors import ValidationError, VerificationError
from tenfra.provider import releases
from tenfra.provider.app import ApiError, state
from tenfra.provider.auth import (
    check_secret,
    fingerprint,
    make_credential,
    secret_hash,
    split_credential,
)
from tenfra.provider.models import (
    BootstrapToken,
    Event,
    HookDelivery,
    Host,
    HostStatus,
    LogLine,
    RecipeResult,
    Release,
    Run,
    TaskResult,
    db,
    is_postgres,
    now,
)

logger = logging.getLogger(__name__)

blueprint = Blueprint("api", __name__, url_prefix="/api/v1")

HOST_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,251}[A-Za-z0-9_])?$")
SEEN_EVERY = 60.0


# -- request bodies ------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class EnrollBody:
    host: str
    token: Optional[str] = None
    request: Optional[str] = None


@attrs.frozen(kw_only=True)
class LogEntry:
    message: str
    time: Optional[str] = None
    level: Optional[str] = None


@attrs.frozen(kw_only=True)
class LogsBody:
    lines: list[Union[str, dict[str, Any]]]
    host: Optional[str] = None


@attrs.frozen(kw_only=True)
class FactsBody:
    facts: dict[str, Any]
    host: Optional[str] = None


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ApiError(400, f"The JSON body repeats the key {key!r}; send it once.")
        result[key] = value
    return result


def _reject_constant(name: str) -> Any:
    raise ApiError(400, f"The JSON body contains {name}, which is not valid JSON.")


def _read_body(limit: int) -> bytes:
    """At most ``limit`` bytes of the body, or 413: never a truncated body.

    A chunked body has no length to check up front, so this reads at most
    ``limit + 1`` bytes from the stream and refuses the request if there are more.
    """
    from werkzeug.exceptions import RequestEntityTooLarge
    from werkzeug.wsgi import get_input_stream

    too_large = ApiError(
        413,
        f"The request body is larger than the provider's limit of {limit} bytes "
        f"(limits.maxBody); send less at once.",
    )
    chunks: list[bytes] = []
    size = 0
    try:
        stream = get_input_stream(request.environ, max_content_length=limit + 1)
        while size <= limit:
            chunk = stream.read(min(65536, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except RequestEntityTooLarge:
        raise too_large from None
    if size > limit:
        raise too_large
    return b"".join(chunks)


def json_body() -> dict[str, Any]:
    """The request's JSON object, parsed strictly (no duplicates, no NaN)."""
    mimetype = request.mimetype
    if mimetype != "application/json":
        raise ApiError(
            415,
            f"The body must be JSON with 'Content-Type: application/json', not "
            f"{mimetype or 'none'!r}.",
        )
    limit = state().config.limits.max_body
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(
            413,
            f"The request body has {request.content_length} bytes, more than the "
            f"provider's limit of {limit} (limits.maxBody); send less at once.",
        )
    raw = _read_body(limit)
    try:
        data = json.loads(
            raw.decode("utf-8"),
            object_pairs_hook=_reject_duplicates,
            parse_constant=_reject_constant,
        )
    except UnicodeDecodeError:
        raise ApiError(400, "The body is not UTF-8 text.") from None
    except RecursionError:
        raise ApiError(
            400, "The JSON body is nested too deeply; send a flatter document."
        ) from None
    except ValueError as exc:
        raise ApiError(400, f"The body is not valid JSON: {exc}.") from None
    if not isinstance(data, dict):
        raise ApiError(422, "The body must be a JSON object.")
    return data


def validate(data: Any, cls: type[Any], what: str) -> Any:
    from tenfra.convert import structure

    try:
        return structure(data, cls, source=what, what=what)
    except ValidationError as exc:
        raise ApiError(422, f"{exc}.".replace("..", ".")) from None


# -- authentication ------------------------------------------------------------------


@attrs.define
class AuthedHost:
    id: int
    name: str
    target_name: Optional[str]
    target_release: Optional[str]
    target_sequence: Optional[int]
    target_digest: Optional[str]
    last_seen: Optional[float]


def unauthorized(message: str) -> ApiError:
    return ApiError(401, message, {"WWW-Authenticate": 'Bearer realm="tenfra"'})


_LOOKUP_SQL: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


def _lookup_sql() -> str:
    """The poll's one query, built once per database (it runs 1,000s of times/s)."""

    key = db.obj
    sql = _LOOKUP_SQL.get(key)
    if sql is None:
        query = Host.select(
            Host.id,
            Host.credential_hash,
            Host.target_name,
            Host.target_release,
            Host.target_sequence,
            Host.target_digest,
            Host.last_seen,
        ).where(Host.name == "")
        sql = str(query.sql()[0])
        _LOOKUP_SQL[key] = sql
    return sql


def lookup_credential(header: str) -> Optional[AuthedHost]:
    """The host a ``Bearer`` header authenticates, or None."""

    if not header.startswith("Bearer "):
        return None
    parts = split_credential(header[7:].strip())
    if parts is None:
        return None
    name, secret = parts
    cursor = db.execute_sql(_lookup_sql(), (name,))
    row = cursor.fetchone()
    cursor.close()  # ends SQLite's read transaction before any write
    if row is None:
        check_secret(secret, None)
        return None
    if not check_secret(secret, row[1]):
        return None
    return AuthedHost(row[0], name, row[2], row[3], row[4], row[5], row[6])


def authenticate() -> AuthedHost:
    """The authenticated host of this request, or a 401/403 ApiError."""
    header = request.headers.get("Authorization", "")
    if not header:
        raise unauthorized(
            "This endpoint needs 'Authorization: Bearer <credential>'; enrol the "
            "agent first with 'tenfra agent enroll'."
        )
    host = lookup_credential(header)
    if host is None:
        raise unauthorized(
            "The credential is not valid (malformed, unknown host or revoked); "
            "enrol the host again with a new bootstrap token."
        )
    claimed = request.args.get("host")
    if claimed is not None and claimed != host.name:
        raise ApiError(
            403, f"Host {host.name!r} may not access the data of host {claimed!r}."
        )
    g.host = host
    return host


def claim(body_host: Optional[str], host: AuthedHost) -> None:
    if body_host is not None and body_host != host.name:
        raise ApiError(
            403, f"Host {host.name!r} may not write data for host {body_host!r}."
        )


def _touch(host: AuthedHost) -> None:
    """Record that the host was seen, at most once a minute (polls stay reads)."""

    moment = now()
    if host.last_seen is None or moment - host.last_seen > SEEN_EVERY:
        Host.update(last_seen=moment).where(Host.id == host.id).execute()


# -- enrolment -----------------------------------------------------------------------


@blueprint.post("/enroll")
def enroll() -> Response:
    """Exchange a bootstrap token (or an approved request) for a credential."""
    body: EnrollBody = validate(json_body(), EnrollBody, "the enrolment request")
    if not HOST_NAME.match(body.host):
        raise ApiError(
            422,
            f"{body.host!r} is not a valid host name; use letters, digits, '.', '-' "
            "and '_' (at most 253 characters).",
        )
    if body.token is not None:
        return _enroll_with_token(body.host, body.token)
    if not state().config.auth.approval:
        raise unauthorized(
            "Enrolment needs a bootstrap token; create one with 'tenfra provider "
            f"token --host {body.host}' or in the admin UI."
        )
    return _enroll_by_approval(body.host, body.request)


def _enroll_with_token(host: str, token: str) -> Response:

    moment = now()
    row = BootstrapToken.get_or_none(BootstrapToken.token_hash == secret_hash(token))
    if row is None or row.used is not None or row.expires <= moment:
        raise unauthorized(
            "The bootstrap token is unknown, already used or expired; create a new "
            f"one with 'tenfra provider token --host {host}'."
        )
    if row.host != host:
        raise ApiError(
            403,
            f"The bootstrap token was issued for host {row.host!r}, not {host!r}; "
            "enrol with the host name it was made for.",
        )
    credential, hashed = make_credential(host)
    with db.atomic():
        used = (
            BootstrapToken.update(used=moment)
            .where((BootstrapToken.id == row.id) & BootstrapToken.used.is_null())
            .execute()
        )
        if not used:
            raise unauthorized(
                "The bootstrap token was used a moment ago by another request."
            )
        values = {
            "credential_hash": hashed,
            "enrolled": moment,
            "approved": False,
            "request_hash": None,
            "request_fingerprint": None,
            "requested": None,
        }
        updated = Host.update(**values).where(Host.name == host).execute()
        if not updated:
            Host.create(name=host, **values)
        Event.create(
            time=moment, actor=host, action="enrolled", subject=host, detail="token"
        )
    releases.assign(state().rings, [host])
    logger.info("host %s enrolled with a bootstrap token", host)
    return _json({"host": host, "credential": credential}, 200)


def _enroll_by_approval(host: str, request_secret: Optional[str]) -> Response:
    """Approval mode: 202 until an administrator approves, then the credential once."""

    moment = now()
    given_hash = secret_hash(request_secret or "")
    row = Host.get_or_none(Host.name == host)
    if row is not None and row.request_hash is not None and row.approved:
        if not check_secret(request_secret or "", row.request_hash):
            raise ApiError(
                403,
                f"Host {host!r} was approved for another enrolment request; use the "
                "agent that made it, or ask for a bootstrap token.",
            )
        credential, hashed = make_credential(host)
        with db.atomic():
            taken = (
                Host.update(
                    credential_hash=hashed,
                    enrolled=moment,
                    approved=False,
                    request_hash=None,
                    request_fingerprint=None,
                    requested=None,
                )
                .where((Host.id == row.id) & (Host.request_hash == row.request_hash))
                .execute()
            )
            if not taken:
                raise ApiError(409, "This enrolment was completed by another request.")
            Event.create(
                time=moment,
                actor=host,
                action="enrolled",
                subject=host,
                detail="approval",
            )
        releases.assign(state().rings, [host])
        logger.info("host %s enrolled after approval", host)
        return _json({"host": host, "credential": credential}, 200)
    shown = fingerprint(request_secret or "")
    if row is None:
        Host.create(
            name=host,
            request_hash=given_hash,
            request_fingerprint=shown,
            requested=moment,
        )
        logger.info("host %s asks to enrol (fingerprint %s)", host, shown)
    elif row.request_hash != given_hash:
        Host.update(
            request_hash=given_hash, request_fingerprint=shown, requested=moment
        ).where(Host.id == row.id).execute()
        logger.info("host %s asks to enrol (fingerprint %s)", host, shown)
    return _json(
        {
            "host": host,
            "status": "pending",
            "fingerprint": shown,
            "message": "Waiting for an administrator to approve this host.",
        },
        202,
    )


# -- releases, bundles, assets ---------------------------------------------------------


def _etags(header: Optional[str]) -> set[str]:
    if not header:
        return set()
    tags = set()
    for part in header.split(","):
        tag = part.strip()
        if tag.startswith("W/"):
            tag = tag[2:]
        tags.add(tag.strip('"'))
    return tags


def _no_release(host: AuthedHost) -> ApiError:
    return ApiError(
        404,
        f"No release is assigned to host {host.name!r} yet: no release lists it, its "
        "rollout ring has not been reached, or the release was rolled back.",
    )


@blueprint.get("/release")
def release() -> Response:
    """This host's current release; 304 when ``If-None-Match`` already names it."""
    host = authenticate()
    _touch(host)
    if host.target_digest is None:
        raise _no_release(host)
    etag = host.target_digest
    match = _etags(request.headers.get("If-None-Match"))
    if etag in match or "*" in match:
        response = Response(status=304)
    else:
        response = _json(
            {
                "release": host.target_release,
                "name": host.target_name,
                "sequence": host.target_sequence,
                "digest": host.target_digest,
            },
            200,
        )
    response.headers["ETag"] = f'"{etag}"'
    response.headers["Cache-Control"] = "no-cache"
    return response


# The status that tells an agent its release was refused, not that the
# provider is down: the stored bundle does not match the manifest's digest.
BUNDLE_MISMATCH = 409


def _checked_bundle(host: AuthedHost) -> tuple[bytes, str, list[str]]:
    """The host's bundle from storage; 409 when it does not match the manifest."""
    assert host.target_name is not None and host.target_digest is not None
    try:
        return state().storage.bundle(host.target_name, host.name, host.target_digest)
    except VerificationError as exc:
        logger.error("refusing to serve a bundle to %s: %s", host.name, exc)
        raise ApiError(
            BUNDLE_MISMATCH,
            f"{exc} The provider refuses to serve it; republish the release.",
        ) from None


@blueprint.get("/bundle")
def bundle() -> Response:
    """This host's current bundle, signature in ``X-Tenfra-Signature``."""
    host = authenticate()
    if host.target_name is None or host.target_digest is None:
        raise _no_release(host)
    data, signature, _ = _checked_bundle(host)
    response = Response(data, status=200, mimetype="application/json")
    response.headers["X-Tenfra-Signature"] = signature
    response.headers["X-Tenfra-Release"] = host.target_name
    response.headers["ETag"] = f'"{host.target_digest}"'
    response.headers["Cache-Control"] = "no-cache"
    return response


@blueprint.get("/assets/<string:digest>")
def asset(digest: str) -> Response:
    """An asset, only when this host's current bundle lists its digest."""

    host = authenticate()
    if not releases.DIGEST.match(digest):
        raise ApiError(404, f"{digest!r} is not an asset digest (64 hex characters).")
    if host.target_name is None or host.target_digest is None:
        raise _no_release(host)
    storage = state().storage
    _, _, assets = _checked_bundle(host)
    if digest not in assets:
        raise ApiError(
            403,
            f"Asset {digest} is not referenced by the bundle of host {host.name!r}; "
            "a host may fetch only its own assets.",
        )
    handle, size = storage.open_asset(digest)

    def chunks() -> Any:
        try:
            while True:
                block = handle.read(256 * 1024)
                if not block:
                    break
                yield block
        finally:
            handle.close()

    response = Response(chunks(), status=200, mimetype="application/octet-stream")
    response.headers["Content-Length"] = str(size)
    response.headers["ETag"] = f'"{digest}"'
    response.headers["Cache-Control"] = "private, max-age=31536000, immutable"
    return response


# -- reports, logs, facts --------------------------------------------------------------


def _timestamp(text: str, field: str) -> float:
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(
            422, f"the report's {field} {text!r} is not an ISO 8601 time."
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return moment.timestamp()


def redact(text: Optional[str]) -> Optional[str]:
    """Mask configured patterns (``redact`` in provider.yaml) in diffs and errors."""
    if text is None:
        return None
    for pattern in state().redact:
        text = pattern.sub("********", text)
    return text


@blueprint.post("/reports")
def post_report() -> Response:
    """Store one run report in one transaction; the report id makes it idempotent."""
    from tenfra.report import report_from_json, report_to_json

    host = authenticate()
    data = json_body()
    try:
        report = report_from_json(data)
    except ValidationError as exc:
        raise ApiError(
            422, f"The report is not valid: {exc}.".replace("..", ".")
        ) from None
    if report.host != host.name:
        raise ApiError(
            403, f"Host {host.name!r} may not post a report for host {report.host!r}."
        )
    key = request.headers.get("Idempotency-Key")
    if key is not None and key != report.id:
        raise ApiError(
            422,
            f"The Idempotency-Key header {key!r} differs from the report id "
            f"{report.id!r}; send the report id as the key.",
        )
    if not report.id or len(report.id) > 100:
        raise ApiError(422, "The report id must have 1 to 100 characters.")
    _redact_report(report)
    stored = report_to_json(report)
    created = store_report(report, stored, host.name)
    if not created:
        return _json({"status": "duplicate", "id": report.id}, 200)
    _after_report(report, stored, host.name)
    return _json({"status": "stored", "id": report.id}, 201)


def _redact_report(report: Any) -> None:
    if not state().redact:
        return
    report.error = redact(report.error)
    for recipe in report.recipes:
        recipe.error = redact(recipe.error)
        stack = list(recipe.tasks)
        while stack:
            task = stack.pop()
            task.diff = redact(task.diff)
            task.error = redact(task.error)
            task.message = redact(task.message)
            stack.extend(task.children)


_RUN = (
    "report_id",
    "host",
    "started",
    "finished",
    "received",
    "status",
    "release",
    "sequence",
    "check",
    "duration",
    "changed",
    "failed",
    "total",
    "error",
)
_RECIPE = ("run", "position", "recipe_id", "name", "status", "duration", "error")
_TASK = (
    "run",
    "recipe_position",
    "position",
    "depth",
    "name",
    "type",
    "status",
    "changed",
    "duration",
    "diff",
    "error",
    "message",
    "location",
)
_STATUS = (
    "host",
    "report_id",
    "started",
    "finished",
    "status",
    "release",
    "sequence",
    "changed",
    "failed",
    "check",
    "error",
    "received",
)
_HOOK = (
    "hook",
    "host",
    "report_id",
    "payload",
    "created",
    "next_attempt",
    "attempts",
    "claimed_until",
    "done",
)
_STATEMENTS: weakref.WeakKeyDictionary[Any, dict[str, str]] = (
    weakref.WeakKeyDictionary()
)


def _statements() -> dict[str, str]:
    """INSERT statements of the report path, built once per database.

    Reports arrive by the hundred per second; generating the SQL with
    peewee's query builder each time costs more than running it.
    """
    database = db.obj
    found = _STATEMENTS.get(database)
    if found is not None:
        return found
    mark = database.param

    def insert(model: Any, names: tuple[str, ...]) -> str:
        meta = model._meta
        columns = ", ".join(f'"{meta.fields[n].column_name}"' for n in names)
        marks = ", ".join([mark] * len(names))
        return f'INSERT INTO "{meta.table_name}" ({columns}) VALUES ({marks})'  # noqa: S608 (names from the models)

    table = HostStatus._meta.table_name
    updates = ", ".join(f'"{n}" = excluded."{n}"' for n in _STATUS[1:])
    found = {
        "run": insert(Run, _RUN) + (' RETURNING "id"' if is_postgres() else ""),
        "recipe": insert(RecipeResult, _RECIPE),
        "task": insert(TaskResult, _TASK),
        "status": insert(HostStatus, _STATUS)
        + f' ON CONFLICT ("host") DO UPDATE SET {updates}'
        + f' WHERE "{table}"."finished" <= excluded."finished"',
        "hook": insert(HookDelivery, _HOOK),
    }
    _STATEMENTS[database] = found
    return found


def _write_transaction() -> Any:
    """A transaction that takes SQLite's write lock at once (no upgrade races)."""
    import peewee as pw

    if isinstance(db.obj, pw.SqliteDatabase):
        return db.obj.atomic("IMMEDIATE")
    return db.atomic()


def store_report(report: Any, stored: dict[str, Any], host: str) -> bool:
    """Insert the run, its recipes and tasks, the host status and hook deliveries.

    One transaction; returns False when a report with this id was stored
    before (by any replica: the report id is unique in the database).
    """
    import peewee as pw

    from tenfra.provider.hooks import select_hooks

    started = _timestamp(report.started, "started")
    finished = _timestamp(report.finished, "finished")
    counts = report.counts()
    changed = counts["changed"] + counts["would-change"]
    failed = counts["failed"] + counts["rejected"]
    moment = now()
    hooks = state().hooks
    wanted = select_hooks(hooks, stored, host) if hooks else []
    status = report.status.value
    sql = _statements()
    run_values = (
        report.id,
        host,
        started,
        finished,
        moment,
        status,
        report.release,
        report.sequence,
        report.check,
        max(finished - started, 0.0),
        changed,
        failed,
        sum(counts.values()),
        report.error,
    )
    try:
        with _write_transaction():
            cursor = db.execute_sql(sql["run"], run_values)
            run_id = cursor.fetchone()[0] if is_postgres() else cursor.lastrowid
            recipe_rows = []
            task_rows: list[tuple[Any, ...]] = []
            for position, recipe in enumerate(report.recipes):
                recipe_rows.append(
                    (
                        run_id,
                        position,
                        recipe.id[:300],
                        recipe.name[:300],
                        recipe.status.value,
                        recipe.duration,
                        recipe.error,
                    )
                )
                _flatten(run_id, position, recipe.tasks, 0, task_rows)
            raw = db.cursor()
            if recipe_rows:
                raw.executemany(sql["recipe"], recipe_rows)
            if task_rows:
                raw.executemany(sql["task"], task_rows)
            status_row = (
                host,
                report.id,
                started,
                finished,
                status,
                report.release,
                report.sequence,
                changed,
                failed,
                report.check,
                report.error,
                moment,
            )
            db.execute_sql(sql["status"], status_row)
            if wanted:
                payload = json.dumps(stored, separators=(",", ":"))
                raw.executemany(
                    sql["hook"],
                    [
                        (name, host, report.id, payload, moment, moment, 0, 0.0, False)
                        for name in wanted
                    ],
                )
    except pw.IntegrityError:
        if Run.select().where(Run.report_id == report.id).exists():
            return False
        raise
    return True


def _flatten(
    run_id: int, recipe: int, tasks: Any, depth: int, rows: list[tuple[Any, ...]]
) -> None:
    for task in tasks:
        rows.append(
            (
                run_id,
                recipe,
                len(rows),
                depth,
                task.name[:500],
                task.type[:100],
                task.status.value,
                task.changed,
                task.duration,
                task.diff,
                task.error,
                task.message,
                task.location[:500] if task.location else None,
            )
        )
        _flatten(run_id, recipe, task.children, depth + 1, rows)


def _after_report(report: Any, stored: dict[str, Any], host: str) -> None:
    """Rollout evaluation, plugin hooks and a wake-up for hook deliveries."""
    from tenfra.pluginmanager import get_plugin_manager

    provider = state()
    if report.sequence is not None and not report.check:
        rolling = (
            Release.select(Release.name)
            .where(
                (Release.sequence == report.sequence)
                & (Release.state == releases.ROLLING)
            )
            .first()
        )
        if rolling is not None:
            try:
                for action in releases.evaluate(
                    provider.config, provider.rings, rolling.name
                ):
                    logger.info("rollout: %s", action)
            except Exception:
                logger.exception("rollout evaluation failed; the periodic job retries")
    # Each plugin on its own: one that raises is logged and skips no other.
    arguments = {"report": stored, "host": host}
    caller = get_plugin_manager().hook.tenfra_report_received
    for impl in reversed(caller.get_hookimpls()):
        try:
            impl.function(*(arguments[name] for name in impl.argnames))
        except Exception:
            logger.exception(
                "plugin %s failed in tenfra_report_received for the report of %s",
                impl.plugin_name,
                host,
            )
    if provider.hooks:
        provider.worker.wake()


@blueprint.post("/logs")
def post_logs() -> Response:
    """Append log lines: strings, or objects with message, time and level."""

    host = authenticate()
    body: LogsBody = validate(json_body(), LogsBody, "the log request")
    claim(body.host, host)
    limits = state().config.limits
    if len(body.lines) > limits.max_log_lines:
        raise ApiError(
            413,
            f"{len(body.lines)} log lines in one request is more than the limit of "
            f"{limits.max_log_lines} (limits.maxLogLines); send them in batches.",
        )
    moment = now()
    rows = []
    for index, line in enumerate(body.lines):
        if isinstance(line, str):
            entry = LogEntry(message=line)
        else:
            entry = validate(line, LogEntry, f"log line {index}")
        rows.append(
            {
                "host": host.name,
                "received": moment,
                "time": entry.time[:40] if entry.time else None,
                "level": entry.level[:20] if entry.level else None,
                "message": redact(entry.message[: limits.max_line_length]),
            }
        )
    if rows:
        LogLine.insert_many(rows).execute()
    return _json({"status": "stored", "lines": len(rows)}, 201)


@blueprint.post("/facts")
def post_facts() -> Response:
    """Replace the host's facts."""

    host = authenticate()
    body: FactsBody = validate(json_body(), FactsBody, "the facts request")
    claim(body.host, host)
    text = json.dumps(body.facts, sort_keys=True)
    Host.update(facts=text, facts_at=now()).where(Host.id == host.id).execute()
    return _json({"status": "stored"}, 200)


@blueprint.get("/plugins")
def plugins() -> Response:
    """The provider's plugins (name, version, origin, hooks), as ``tenfra plugins``."""
    from tenfra.pluginmanager import get_plugin_manager

    authenticate()
    return _json(get_plugin_manager().describe(), 200)


def _json(data: Any, status: int) -> Response:
    response = jsonify(data)
    response.status_code = status
    return response
