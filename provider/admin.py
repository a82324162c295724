"""The admin web UI under ``/admin``: fleet, hosts and releases, rendered on the server.

Administrators are listed in provider.yaml with scrypt password hashes.  A
login stores the user name in Flask's signed session cookie (nothing on the
server, so any replica serves any request).  Every POST form carries a CSRF
token kept in the session.  Pages work without JavaScript.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any, Optional

from flask import (
    Blueprint,
    Response,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from tenfra.provider.app import state

logger = logging.getLogger(__name__)

blueprint = Blueprint("admin", __name__, url_prefix="/admin")

STATUSES = ("ok", "changed", "failed", "rejected", "would-change", "unknown", "skipped")
PAGE = 200


# -- authentication ----------------------------------------------------------------


def current_user() -> Optional[str]:
    user = session.get("user")
    if not isinstance(user, str):
        return None
    if user not in {u.name for u in state().config.auth.users}:
        return None
    return user


def csrf_token() -> str:
    from tenfra.provider.auth import new_csrf_token

    token = session.get("csrf")
    if not isinstance(token, str):
        token = new_csrf_token()
        session["csrf"] = token
    return token


def _login_page(status: int, error: Optional[str] = None) -> Response:
    target = request.full_path if request.method == "GET" else url_for("admin.fleet")
    page = render_template(
        "login.html", next=_safe_next(target), error=error, user=None
    )
    response = make_response(page, status)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Session realm="tenfra admin"'
    return response


def require_admin() -> Optional[Response]:
    """None when an administrator is logged in; else the 401/403 answer."""
    from tenfra.provider.api import lookup_credential

    if current_user() is not None:
        return None
    header = request.headers.get("Authorization", "")
    if header and lookup_credential(header) is not None:
        page = render_template(
            "error.html",
            user=None,
            title="Forbidden",
            message="Host credentials cannot use the admin UI; log in as an "
            "administrator.",
        )
        return make_response(page, 403)
    return _login_page(401)


@blueprint.before_request
def _guard() -> Optional[Response]:
    from tenfra.provider.auth import csrf_matches

    if request.endpoint in ("admin.login", "admin.login_post"):
        return None
    denied = require_admin()
    if denied is not None:
        return denied
    if request.method == "POST" and not csrf_matches(
        session.get("csrf"), request.form.get("csrf")
    ):
        page = render_template(
            "error.html",
            user=current_user(),
            title="Form expired",
            message="The form's security token did not match (the page was old or "
            "came from another site). Go back, reload the page and try again.",
        )
        return make_response(page, 400)
    return None


@blueprint.app_template_global("csrf_token")
def _csrf_global() -> str:
    return csrf_token()


@blueprint.app_template_filter("when")
def _when(value: Optional[float]) -> str:
    if not value:
        return "never"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(value))


@blueprint.app_template_filter("ago")
def _ago(value: Optional[float]) -> str:
    if not value:
        return "never"
    seconds = max(time.time() - value, 0)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit} ago"
    return f"{int(seconds)}s ago"


def _safe_next(target: Optional[str]) -> str:
    if not target or not target.startswith("/admin") or target.startswith("//"):
        return url_for("admin.fleet")
    return target.rstrip("?")


@blueprint.get("/login")
def login() -> Response:
    if current_user() is not None:
        return redirect(_safe_next(request.args.get("next")))  # type: ignore[return-value]
    page = render_template(
        "login.html", next=_safe_next(request.args.get("next")), error=None, user=None
    )
    return make_response(page, 200)


@blueprint.post("/login")
def login_post() -> Response:
    from tenfra.provider.auth import (
        csrf_matches,
        dummy_hash,
        new_csrf_token,
        verify_password,
    )

    if not csrf_matches(session.get("csrf"), request.form.get("csrf")):
        return _login_page(400, "The login form expired; please try again.")
    name = request.form.get("username", "")
    password = request.form.get("password", "")
    users = {u.name: u.password_hash for u in state().config.auth.users}
    stored = users.get(name)
    ok = verify_password(password, stored if stored is not None else dummy_hash())
    if stored is None or not ok:
        logger.warning("admin login failed for %r from %s", name, request.remote_addr)
        return _login_page(401, "Unknown user name or wrong password.")
    session.clear()
    session["user"] = name
    session["csrf"] = new_csrf_token()
    session.permanent = True
    logger.info("admin %s logged in", name)
    return redirect(_safe_next(request.form.get("next")))  # type: ignore[return-value]


@blueprint.post("/logout")
def logout() -> Response:
    session.clear()
    return redirect(url_for("admin.login"))  # type: ignore[return-value]


def _event(action: str, subject: str, detail: str = "") -> None:
    from tenfra.provider.models import Event, now

    Event.create(
        time=now(),
        actor=current_user() or "?",
        action=action,
        subject=subject,
        detail=detail,
    )


# -- fleet -------------------------------------------------------------------------


@blueprint.get("/")
def fleet() -> str:
    import peewee as pw

    from tenfra.provider.models import Host, HostStatus

    status_filter = request.args.get("status") or None
    search = (request.args.get("q") or "").strip()
    page = max(_int(request.args.get("page"), 1), 1)

    counts = dict.fromkeys(STATUSES, 0)
    by_status: Any = (
        HostStatus.select(HostStatus.status, pw.fn.COUNT(HostStatus.host))
        .join(Host, on=(Host.name == HostStatus.host))
        .where(Host.credential_hash.is_null(False))
        .group_by(HostStatus.status)
        .tuples()
    )
    for status, number in by_status:
        counts[status] = number
    enrolled = Host.select().where(Host.credential_hash.is_null(False)).count()
    counts["no report"] = enrolled - sum(counts.values())

    query = (
        Host.select(
            Host.name,
            Host.target_name,
            Host.last_seen,
            Host.pin,
            HostStatus.finished,
            HostStatus.status,
            HostStatus.release,
            HostStatus.sequence,
            HostStatus.changed,
            HostStatus.failed,
            HostStatus.check,
        )
        .join(
            HostStatus, join_type=pw.JOIN.LEFT_OUTER, on=(HostStatus.host == Host.name)
        )
        .where(Host.credential_hash.is_null(False))
    )
    if status_filter == "no report":
        query = query.where(HostStatus.status.is_null())
    elif status_filter:
        query = query.where(HostStatus.status == status_filter)
    if search:
        query = query.where(Host.name.contains(search))
    total = query.count()
    rows = list(query.order_by(Host.name).paginate(page, PAGE).dicts())
    pending = list(
        Host.select()
        .where(Host.request_hash.is_null(False))
        .order_by(Host.requested)
        .limit(100)
    )
    return render_template(
        "fleet.html",
        user=current_user(),
        counts=counts,
        enrolled=enrolled,
        rows=rows,
        total=total,
        page=page,
        pages=max((total + PAGE - 1) // PAGE, 1),
        status_filter=status_filter,
        search=search,
        pending=pending,
        approval=state().config.auth.approval,
        token_ttl=int(state().config.auth.token_ttl),
    )


def _int(text: Optional[str], default: int) -> int:
    try:
        return int(text) if text is not None else default
    except ValueError:
        return default


@blueprint.post("/tokens")
def create_token_view() -> Response:
    from tenfra.errors import UserError
    from tenfra.provider.maintenance import create_token

    host = request.form.get("host", "").strip()
    ttl = _int(request.form.get("ttl"), int(state().config.auth.token_ttl))
    try:
        token, expires = create_token(host, ttl, actor=current_user() or "?")
    except UserError as exc:
        flash(str(exc), "error")
        return redirect(url_for("admin.fleet"))  # type: ignore[return-value]
    base = state().config.public_url or request.url_root.rstrip("/")
    command = (
        f"curl -fsSL {base}/bootstrap/install.sh | sudo sh -s -- "
        f"--token {token} --host {host}"
    )
    page = render_template(
        "token.html",
        user=current_user(),
        host=host,
        token=token,
        expires=expires,
        command=command,
    )
    return make_response(page, 201)


@blueprint.post("/hosts/<string:name>/approve")
def approve(name: str) -> Response:
    from tenfra.provider.maintenance import approve_host

    if approve_host(name, actor=current_user() or "?"):
        flash(f"Approved {name}; it receives its credential on its next try.", "info")
    else:
        flash(f"{name} has no pending enrolment request.", "error")
    return redirect(url_for("admin.fleet"))  # type: ignore[return-value]


@blueprint.post("/hosts/<string:name>/reject")
def reject(name: str) -> Response:
    from tenfra.provider.models import Host

    row = Host.get_or_none(Host.name == name)
    if row is not None and row.request_hash is not None:
        if row.credential_hash is None:
            row.delete_instance()
        else:
            Host.update(
                request_hash=None,
                request_fingerprint=None,
                requested=None,
                approved=False,
            ).where(Host.id == row.id).execute()
        _event("rejected", name)
        flash(f"Rejected the enrolment request of {name}.", "info")
    return redirect(url_for("admin.fleet"))  # type: ignore[return-value]


# -- host page ---------------------------------------------------------------------


@blueprint.get("/hosts/<string:name>")
def host(name: str) -> Any:
    from tenfra.provider.models import (
        Host,
        HostStatus,
        LogLine,
        RecipeResult,
        Release,
        Run,
        TaskResult,
    )

    row = Host.get_or_none(Host.name == name)
    if row is None:
        page = render_template(
            "error.html",
            user=current_user(),
            title="Unknown host",
            message=f"No host named {name!r} is enrolled or waiting for approval.",
        )
        return make_response(page, 404)
    status = HostStatus.get_or_none(HostStatus.host == name)
    runs = list(
        Run.select().where(Run.host == name).order_by(Run.finished.desc()).limit(50)
    )
    chosen_id = request.args.get("run")
    run = None
    if chosen_id:
        run = Run.get_or_none((Run.host == name) & (Run.report_id == chosen_id))
    elif runs:
        run = runs[0]
    recipes: list[dict[str, Any]] = []
    if run is not None:
        tasks: dict[int, list[Any]] = {}
        for task in (
            TaskResult.select()
            .where(TaskResult.run == run.id)
            .order_by(TaskResult.position)
        ):
            tasks.setdefault(task.recipe_position, []).append(task)
        for recipe in (
            RecipeResult.select()
            .where(RecipeResult.run == run.id)
            .order_by(RecipeResult.position)
        ):
            recipes.append({"recipe": recipe, "tasks": tasks.get(recipe.position, [])})
    logs = list(
        LogLine.select()
        .where(LogLine.host == name)
        .order_by(LogLine.received.desc(), LogLine.id.desc())
        .limit(200)
    )
    logs.reverse()
    facts = (
        json.dumps(json.loads(row.facts), indent=2, sort_keys=True)
        if row.facts
        else None
    )
    release_names = [
        r.name
        for r in Release.select(Release.name)
        .order_by(Release.sequence.desc())
        .limit(30)
    ]
    return render_template(
        "host.html",
        user=current_user(),
        host=row,
        status=status,
        runs=runs,
        run=run,
        recipes=recipes,
        logs=logs,
        facts=facts,
        release_names=release_names,
        ring=state().rings.names[state().rings.index(name)],
    )


@blueprint.post("/hosts/<string:name>/pin")
def pin_host(name: str) -> Response:
    from tenfra.provider import releases

    chosen = request.form.get("release") or None
    releases.set_pin(chosen, state().rings, actor=current_user() or "?", host=name)
    flash(
        f"Pinned {name} to {chosen}." if chosen else f"Removed the pin of {name}.",
        "info",
    )
    return redirect(url_for("admin.host", name=name))  # type: ignore[return-value]


@blueprint.post("/hosts/<string:name>/revoke")
def revoke(name: str) -> Response:
    from tenfra.provider.models import Host

    Host.update(credential_hash=None, target_name=None, target_digest=None).where(
        Host.name == name
    ).execute()
    _event("revoked", name)
    flash(f"Revoked the credential of {name}; it must enrol again.", "info")
    return redirect(url_for("admin.host", name=name))  # type: ignore[return-value]


@blueprint.post("/hosts/<string:name>/delete")
def delete_host(name: str) -> Response:
    from tenfra.provider.maintenance import forget_host

    removed = forget_host(name, actor=current_user() or "?")
    if removed["host"]:
        flash(
            f"Deleted {name} with its credential, tokens, facts, status, "
            f"{removed['runs']} run(s) and {removed['logs']} log line(s); a machine "
            "enrolled under this name later starts from nothing.",
            "info",
        )
    else:
        flash(f"There is no host {name!r}.", "error")
    return redirect(url_for("admin.fleet"))  # type: ignore[return-value]


# -- releases ----------------------------------------------------------------------


@blueprint.get("/releases")
def releases_page() -> str:
    from tenfra.provider import releases
    from tenfra.provider.models import Event, Release, get_meta

    rings = state().rings
    rows = []
    for release in Release.select().order_by(Release.sequence.desc()).limit(30):
        progress = (
            releases.ring_progress(release, rings)
            if release.state in (releases.ROLLING, releases.PAUSED)
            else []
        )
        rows.append(
            {
                "release": release,
                "ring": rings.names[release.ring],
                "progress": progress,
            }
        )
    events = list(Event.select().order_by(Event.time.desc(), Event.id.desc()).limit(30))
    return render_template(
        "releases.html",
        user=current_user(),
        rows=rows,
        pin=get_meta(releases.PIN_KEY),
        events=events,
        ring_names=rings.names,
        storage=state().config.releases.url,
    )


@blueprint.post("/releases/<string:name>/<string:action>")
def release_action(name: str, action: str) -> Response:
    from tenfra.provider import releases
    from tenfra.provider.models import Release

    release = Release.get_or_none(Release.name == name)
    back = redirect(url_for("admin.releases_page"))
    if release is None:
        flash(f"There is no release {name}.", "error")
        return back  # type: ignore[return-value]
    rings = state().rings
    actor = current_user() or "?"
    if action == "promote":
        if release.state == releases.PAUSED:
            releases.resume(release, rings, actor=actor)
        done = releases.promote(release, rings, actor=actor)
        releases.assign(rings)
        message = (
            f"Promoted {name} to ring {rings.names[release.ring]}."
            if done
            else f"{name} cannot be promoted ({release.state})."
        )
    elif action == "pause":
        done = releases.pause(release, rings, actor=actor)
        message = f"Paused {name}." if done else f"{name} is not rolling."
    elif action == "resume":
        done = releases.resume(release, rings, actor=actor)
        message = f"Resumed {name}." if done else f"{name} is not paused."
    elif action == "rollback":
        releases.rollback(release, rings, actor=actor)
        message = (
            f"Rolled back {name}: it is no longer served. Hosts that already "
            "applied it keep it, since agents refuse older releases; to return "
            f"them to older content, run 'tenfra compile --rollback-to RELEASE "
            f"--out {state().config.releases.url} --signing-key KEY' in CI."
        )
    elif action == "pin":
        releases.set_pin(name, rings, actor=actor)
        message = (
            f"Every host is pinned to {name}. Hosts that applied a newer release "
            "refuse it; re-issue it with 'tenfra compile --rollback-to "
            f"{name}' to move them back."
        )
    else:
        flash(f"Unknown action {action!r}.", "error")
        return back  # type: ignore[return-value]
    flash(message, "info")
    return back  # type: ignore[return-value]


@blueprint.post("/releases/unpin")
def unpin() -> Response:
    from tenfra.provider import releases

    releases.set_pin(None, state().rings, actor=current_user() or "?")
    flash("Removed the global pin; hosts follow the rollout again.", "info")
    return redirect(url_for("admin.releases_page"))  # type: ignore[return-value]


@blueprint.post("/releases/scan")
def scan() -> Response:
    from tenfra.errors import TenfraError
    from tenfra.provider import releases

    provider = state()
    try:
        added = releases.discover(provider.config, provider.storage, provider.rings)
        releases.assign(provider.rings)
    except TenfraError as exc:
        flash(f"Scanning {provider.config.releases.url} failed: {exc}", "error")
    else:
        flash(
            f"Found {len(added)} new release(s): {', '.join(added)}."
            if added
            else "No new release.",
            "info",
        )
    return redirect(url_for("admin.releases_page"))  # type: ignore[return-value]
