"""One agent cycle: deliver, poll, verify, stage, apply a release, and report."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import attrs

from tenfra.agent.state import (
    CURRENT,
    LAST_GOOD,
    AgentConfig,
    RunLock,
    StateDir,
    safe_join,
)
from tenfra.errors import (
    TenfraError,
    TransportError,
    UserError,
    VerificationError,
)

if TYPE_CHECKING:
    from tenfra.agent.client import ProviderClient, ReleaseInfo
    from tenfra.agent.loop import Stopper
    from tenfra.report import RunReport

logger = logging.getLogger(__name__)

BUNDLE = "bundle.json"
SIGNATURE = "bundle.json.sig"
META = "meta.json"
RECIPES = "recipes"
SITE_PLUGINS = "plugins"
REJECTED = "rejected.json"


@attrs.define
class Outcome:
    """What one cycle did (``tenfra agent run --once`` prints and maps it)."""

    reached: bool = False  # the provider answered the release poll
    new_release: Optional[str] = None  # release folder staged in this cycle
    applied: Optional[str] = None  # release folder applied in this cycle
    status: Optional[str] = None  # status of the run, when one ran
    rejected: Optional[str] = None  # why a release was rejected
    failed: bool = False
    delivered: int = 0
    pending: int = 0
    lost: list[str] = attrs.Factory(list)  # reports neither spooled nor sent
    error: Optional[str] = None

    def summary(self) -> str:
        parts = []
        if self.rejected:
            parts.append(f"rejected: {self.rejected}")
        if self.applied:
            parts.append(f"applied {self.applied}: {self.status}")
        elif not self.rejected:
            parts.append("nothing to apply")
        if not self.reached:
            parts.append(f"provider unreachable ({self.error})")
        parts.append(f"{self.delivered} report(s) delivered, {self.pending} pending")
        if self.lost:
            parts.append(
                f"{len(self.lost)} report(s) lost: they could not be written to the "
                "spool (see the error above) nor sent; free space in the agent's "
                "state directory"
            )
        return "; ".join(parts)


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Agent:
    """The agent's work for one host; :meth:`cycle` is one poll-and-apply pass."""

    def __init__(
        self,
        state: StateDir,
        config: AgentConfig,
        *,
        client: Optional[ProviderClient] = None,
        stopper: Optional[Stopper] = None,
    ) -> None:
        from tenfra.agent.spool import Spool

        self.state = state
        self.config = config
        self._client = client
        self.stopper = stopper
        self.spool = Spool(state.spool)
        self._outcome: Optional[Outcome] = None

    @property
    def client(self) -> ProviderClient:
        if self._client is None:
            from tenfra.agent.client import ProviderClient

            self._client = ProviderClient(
                self.config.provider,
                credential=self.state.credential(),
                ca_file=self.config.ca_file,
                timeout=self.config.timeout,
            )
        return self._client

    # -- the daemon --------------------------------------------------------------------

    def serve(self) -> None:
        """Run cycles until SIGTERM (see :func:`tenfra.agent.loop.run_loop`)."""
        from tenfra.agent.loop import Backoff, Stopper, run_loop

        stopper = self.stopper or Stopper()
        self.stopper = stopper
        interval = max(self.config.interval, 1.0)
        backoff = Backoff(interval, max(self.config.backoff_max, interval))
        logger.info(
            "agent for %s polling %s every %.0f s (+ up to %.0f s splay)",
            self.config.host,
            self.config.provider,
            interval,
            self.config.splay,
        )

        def one() -> bool:
            return self.forked_cycle(stopper)

        run_loop(
            one,
            interval=interval,
            splay=self.config.splay,
            backoff=backoff,
            stopper=stopper,
        )
        logger.info("agent stopped")

    def forked_cycle(self, stopper: Stopper) -> bool:
        """Run :meth:`cycle` in a child process; True when the provider answered.

        The daemon itself stays small while it sleeps (the engine, Jinja2 and
        the plugins are imported by the child only), every run starts with
        the release's own site plugins, and a crash in a run cannot take the
        daemon down.  Signals the daemon receives are passed on to the child.
        """
        read_fd, write_fd = os.pipe()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the child
            os.close(read_fd)
            stopper.child = None
            code = 0
            try:
                outcome = self.cycle(wait_lock=0.0)
                os.write(write_fd, json.dumps(attrs.asdict(outcome)).encode("utf-8"))
            except UserError as exc:  # e.g. a manual run holds the lock
                logger.warning("%s", exc)
                os.write(write_fd, b'{"reached": true}')
            except BaseException:
                logger.exception("agent cycle failed")
                code = 1
            finally:
                logging.shutdown()
                sys.stderr.flush()
                os._exit(code)
        os.close(write_fd)
        stopper.child = pid
        try:
            chunks = []
            while True:
                chunk = os.read(read_fd, 65536)
                if not chunk:
                    break
                chunks.append(chunk)
            os.waitpid(pid, 0)
        finally:
            stopper.child = None
            os.close(read_fd)
        try:
            result = json.loads(b"".join(chunks).decode("utf-8"))
        except ValueError:
            return False
        return bool(isinstance(result, dict) and result.get("reached"))

    # -- one cycle ---------------------------------------------------------------------

    def cycle(self, *, force: bool = False, wait_lock: float = 0.0) -> Outcome:
        """Deliver spooled reports, poll, verify and apply; one run at a time."""
        outcome = Outcome()
        self._outcome = outcome
        with RunLock(self.state.root / "lock", wait=wait_lock):
            self._deliver(outcome)
            current = self.state.pointer(CURRENT)
            meta = self._meta(current) if current else None
            try:
                info = self.client.release(etag=meta["digest"] if meta else None)
                outcome.reached = True
            except TransportError as exc:
                info = None
                outcome.error = str(exc)
                if exc.status == 404:  # reached, but no release for this host yet
                    outcome.reached = True
                    logger.info("%s", exc)
                else:
                    logger.warning("%s", exc)
            if info is not None and (meta is None or info.digest != meta["digest"]):
                staged = self._take_new(info, meta, outcome, force=force)
                if staged is not None:
                    current = staged
            due = outcome.new_release or force or self._repair_due()
            if current is not None and not outcome.applied and due:
                self._apply(current, outcome)
            self._deliver(outcome)
        return outcome

    def _deliver(self, outcome: Outcome) -> None:
        if not len(self.spool):
            outcome.pending = 0
            return
        try:
            client = self.client
        except TenfraError as exc:
            outcome.error = str(exc)
            outcome.pending = len(self.spool)
            return
        result = self.spool.deliver(client.post_report)
        outcome.delivered += len(result.sent) + len(result.duplicates)
        outcome.pending = result.remaining
        if result.error:
            logger.warning(
                "%d report(s) stay spooled: %s", result.remaining, result.error
            )

    def _meta(self, name: str) -> Optional[dict[str, Any]]:
        from tenfra.agent.state import read_json

        data = read_json(self.state.release_dir(name) / META)
        return data if isinstance(data, dict) else None

    def _repair_due(self) -> bool:
        last = self.state.last_run() or {}
        finished = last.get("appliedEpoch")
        if not isinstance(finished, (int, float)):
            return True
        return time.time() - finished >= self.config.repair_interval

    # -- a new release -----------------------------------------------------------------

    def _take_new(
        self,
        info: ReleaseInfo,
        meta: Optional[dict[str, Any]],
        outcome: Outcome,
        *,
        force: bool,
    ) -> Optional[str]:
        """Download, verify and stage a new release; None when it was not taken."""
        from tenfra.agent.state import read_json

        rejected = read_json(self.state.root / REJECTED)
        if (
            not force
            and isinstance(rejected, dict)
            and rejected.get("digest") == info.digest
            and time.time() - float(rejected.get("at", 0)) < self.config.repair_interval
        ):
            logger.info(
                "release %s was rejected before; not retrying yet", info.release
            )
            return None
        try:
            name = self._fetch_and_stage(info, meta)
        except VerificationError as exc:
            outcome.rejected = str(exc)
            logger.error("release %s rejected: %s", info.release, exc)
            self._reject(info, str(exc), repeated=_same(rejected, info.digest))
            return None
        except TransportError as exc:
            outcome.error = str(exc)
            outcome.reached = False
            logger.warning("%s", exc)
            return None
        self.state.set_pointer(CURRENT, name)
        (self.state.root / REJECTED).unlink(missing_ok=True)
        outcome.new_release = name
        logger.info("new release %s staged", name)
        return name

    def _fetch_and_stage(
        self, info: ReleaseInfo, meta: Optional[dict[str, Any]]
    ) -> str:
        from tenfra.release import digest_of, release_name, verify_bundle

        data, signature = self.client.bundle()
        bundle = verify_bundle(
            data,
            signature,
            self.state.public_key(),
            host=self.config.host,
            min_sequence=int(meta["sequence"]) if meta else 0,
            now=None,
            current_release=str(meta["release"]) if meta else None,
        )
        digest = digest_of(data)
        if digest != info.digest:
            raise VerificationError(
                f"The bundle the provider served hashes to {digest}, but the "
                f"provider announced {info.digest}; it was rejected. Check the "
                "provider's storage."
            )
        for asset in bundle["assets"]:
            if not self.state.has_asset(asset):
                self.state.store_asset(asset, self.client.asset(asset))
        name = release_name(bundle["sequence"], bundle["release"])
        files: dict[str, bytes] = {
            BUNDLE: data,
            SIGNATURE: signature,
            META: json.dumps(
                {
                    "release": bundle["release"],
                    "sequence": bundle["sequence"],
                    "digest": digest,
                    "host": bundle["host"],
                    "expires": bundle["expires"],
                    "staged": _now(),
                },
                indent=2,
                sort_keys=True,
            ).encode("utf-8"),
        }
        for relative, asset in bundle["sitePlugins"].items():
            files[f"{SITE_PLUGINS}/{relative}"] = self._asset_bytes(asset)
        for recipe_id, entry in bundle["recipes"].items():
            path = str(entry.get("path") or f"{recipe_id}.yaml")
            files[f"{RECIPES}/{path}"] = str(entry["source"]).encode("utf-8")
            folder = path.rsplit("/", 1)[0] + "/" if "/" in path else ""
            for asset_name, asset in entry.get("assets", {}).items():
                key = f"{RECIPES}/{folder}assets/{asset_name}"
                safe_join(Path("/"), key)
                files[key] = self._asset_bytes(asset)
        return self.state.stage(name, files).name

    def _asset_bytes(self, digest: str) -> bytes:
        return self.state.asset_path(digest).read_bytes()

    def _reject(self, info: ReleaseInfo, message: str, *, repeated: bool) -> None:
        from tenfra.agent.state import atomic_write_json

        atomic_write_json(
            self.state.root / REJECTED,
            {"digest": info.digest, "at": time.time(), "error": message},
        )
        if repeated:
            return
        from tenfra.report import RunReport, Status

        now = _now()
        report = RunReport(
            id=uuid.uuid4().hex,
            host=self.config.host,
            started=now,
            finished=now,
            status=Status.REJECTED,
            release=info.release,
            sequence=info.sequence,
            error=message,
        )
        self._spool(report)
        self._save_last_run(report, None)

    # -- applying ----------------------------------------------------------------------

    def _apply(self, name: str, outcome: Outcome) -> None:
        folder = self.state.release_dir(name)
        bootstrap = not self.state.bootstrapped()
        stop = self.stopper.event if self.stopper is not None else None
        try:
            report = apply_release(
                folder,
                host=self.config.host,
                state_dir=self.state.engine,
                bootstrap=bootstrap,
                stop=stop,
            )
        except Exception as exc:  # a bug in the engine or a plugin: still report it
            logger.exception("applying release %s crashed", name)
            report = _crash_report(self.config.host, folder, exc)
        outcome.applied = name
        outcome.status = report.status.value
        outcome.failed = report.status.value in ("failed", "rejected")
        self._spool(report)
        self._save_last_run(report, name)
        if report.facts:
            try:
                self.client.post_facts(report.facts)
            except TenfraError as exc:  # sent again with the next run
                logger.info("facts not sent: %s", exc)
        if not outcome.failed:
            self.state.set_pointer(LAST_GOOD, name)
            if bootstrap:
                self.state.mark_bootstrapped(name)
        self.state.prune_releases()

    def _spool(self, report: RunReport) -> None:
        """Spool ``report``; when the spool cannot be written (disk full, read-
        only), send it at once instead, and say so loudly if that fails too."""
        from tenfra.report import report_to_json

        data = report_to_json(report)
        try:
            self.spool.add(data)
            return
        except (OSError, TenfraError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
        logger.error(
            "cannot write report %s to the spool %s (%s); sending it directly",
            report.id,
            self.spool.folder,
            reason,
        )
        try:
            self.client.post_report(data, report.id)
        except TenfraError as exc:
            logger.error(
                "report %s of host %s is lost: the spool %s cannot be written (%s) "
                "and the provider did not take it (%s); free space there.",
                report.id,
                self.config.host,
                self.spool.folder,
                reason,
                exc,
            )
            if self._outcome is not None:
                self._outcome.lost.append(report.id)
            return
        if self._outcome is not None:
            self._outcome.delivered += 1
        logger.warning("report %s was delivered without spooling it", report.id)

    def _save_last_run(self, report: RunReport, name: Optional[str]) -> None:
        """Record the run for ``status``; ``name`` is None for a rejection, which
        does not move the drift-repair schedule."""
        previous = self.state.last_run() or {}
        applied = time.time() if name else previous.get("appliedEpoch")
        self.state.save_last_run(
            {
                "appliedEpoch": applied,
                "id": report.id,
                "status": report.status.value,
                "release": name or report.release,
                "started": report.started,
                "finished": report.finished,
                "finishedEpoch": time.time(),
                "counts": report.counts(),
                "error": report.error,
            }
        )


def _crash_report(host: str, folder: Path, exc: BaseException) -> RunReport:
    from tenfra.report import RunReport, Status

    meta = json.loads((folder / META).read_text(encoding="utf-8"))
    now = _now()
    return RunReport(
        id=uuid.uuid4().hex,
        host=host,
        started=now,
        finished=now,
        status=Status.FAILED,
        release=meta.get("release"),
        sequence=meta.get("sequence"),
        error=(
            f"Applying release {folder.name} failed unexpectedly: "
            f"{type(exc).__name__}: {exc}. This is a bug in tenfra or a plugin; the "
            "agent log on the host has the traceback."
        ),
    )


def _same(rejected: Any, digest: str) -> bool:
    return isinstance(rejected, dict) and rejected.get("digest") == digest


def status_of(state: StateDir) -> dict[str, Any]:
    """What ``tenfra agent status`` shows, as a JSON-ready mapping."""
    from tenfra.agent.spool import Spool
    from tenfra.agent.state import read_json

    info: dict[str, Any] = {"stateDir": str(state.root)}
    try:
        config = state.load_config()
        info["host"] = config.host
        info["provider"] = config.provider
    except TenfraError as exc:
        info["configError"] = str(exc)
    info["current"] = state.pointer(CURRENT)
    info["lastGood"] = state.pointer(LAST_GOOD)
    info["lastRun"] = state.last_run()
    info["pendingReports"] = len(Spool(state.spool))
    rejected = read_json(state.root / REJECTED)
    if isinstance(rejected, dict):
        info["rejected"] = rejected
    handlers = read_json(state.engine / "pending-handlers.json")
    pending: list[str] = []
    if isinstance(handlers, dict):
        for host_or_recipe, value in sorted(handlers.items()):
            if isinstance(value, dict):
                for recipe, names in sorted(value.items()):
                    pending.extend(f"{recipe}: {n}" for n in names or [])
            elif isinstance(value, list):
                pending.extend(f"{host_or_recipe}: {n}" for n in value)
    info["pendingHandlers"] = pending
    return info


# -- the engine ---------------------------------------------------------------------


def load_release_plugins(folder: Path) -> Any:
    """A fresh plugin manager with the release's site plugins loaded.

    The manager is process-wide and site plugins change with releases, so the
    daemon starts from a new one for every run.
    """
    from tenfra.pluginmanager import get_plugin_manager, reset_plugin_manager

    reset_plugin_manager()
    manager = get_plugin_manager()
    manager.load_site_plugins(folder / SITE_PLUGINS)
    return manager


def missing_plugins(pins: Any, loaded: dict[str, str]) -> dict[str, str]:
    """``{name: pinned version}`` of the release's plugins this host lacks.

    A version that differs from the pin is logged, not refused: the resource
    types a recipe uses are what must exist.
    """
    missing: dict[str, str] = {}
    for name, version in sorted(dict(pins or {}).items()):
        have = loaded.get(name)
        if have is None:
            missing[name] = str(version)
        elif have != version:
            logger.warning(
                "plugin %s is version %s here but the release was compiled with %s",
                name,
                have,
                version,
            )
    return missing


def apply_release(
    folder: Path,
    *,
    host: str,
    state_dir: Path,
    bootstrap: bool,
    stop: Optional[threading.Event] = None,
) -> RunReport:
    """Apply a staged release with the engine and return the run's report.

    Runs the ``bootstrap`` recipes first when ``bootstrap`` is true, then the
    runtime ones.  A recipe that cannot be loaded here (typically because it
    uses a resource type of a plugin this host lacks) is not run and is
    reported as failed with the missing plugins named; the others still run.
    """
    from tenfra.recipe import RecipeSet
    from tenfra.report import RecipeReport, RunReport, Status, combine

    started = _now()
    bundle = json.loads((folder / BUNDLE).read_bytes())
    try:
        manager = load_release_plugins(folder)
    except TenfraError as exc:
        return RunReport(
            id=uuid.uuid4().hex,
            host=host,
            started=started,
            finished=_now(),
            status=Status.FAILED,
            release=bundle["release"],
            sequence=bundle["sequence"],
            error=f"The release's site plugins could not be loaded: {exc}",
        )
    missing = missing_plugins(bundle.get("plugins"), manager.pins())
    run = bundle.get("run") or {}
    ids = [str(r) for r in run.get("bootstrap", [])] if bootstrap else []
    ids += [str(r) for r in run.get("runtime", []) if r not in ids]
    texts = {
        rid: (str(entry.get("path") or f"{rid}.yaml"), str(entry["source"]))
        for rid, entry in bundle["recipes"].items()
    }
    recipes = RecipeSet(folder / RECIPES, plugin_manager=manager, texts=texts)
    refused: list[RecipeReport] = []
    runnable: list[str] = []
    for recipe_id in ids:
        try:
            recipes.closure([recipe_id])
        except TenfraError as exc:
            refused.append(
                RecipeReport(
                    id=recipe_id,
                    name=recipe_id,
                    status=Status.FAILED,
                    error=_refusal(recipe_id, host, missing, exc),
                )
            )
            logger.error("recipe %s not run: %s", recipe_id, refused[-1].error)
            continue
        runnable.append(recipe_id)
    if runnable:
        report = _run_engine(
            recipes, runnable, bundle, host=host, state_dir=state_dir, stop=stop
        )
    else:
        report = RunReport(
            id=uuid.uuid4().hex,
            host=host,
            started=started,
            finished=_now(),
            status=Status.OK,
        )
    report.recipes = refused + list(report.recipes)
    report.release = bundle["release"]
    report.sequence = bundle["sequence"]
    report.status = combine([r.status for r in report.recipes] + [report.status])
    if refused and not report.error:
        report.error = refused[0].error
    report.facts = gather_facts()
    return report


def gather_facts() -> dict[str, Any]:
    """Every registered fact of this host, JSON-ready, for the provider."""
    from tenfra.factsmod import Facts

    facts = Facts()
    values: dict[str, Any] = {}
    for name in facts:
        try:
            values[name] = json.loads(json.dumps(facts[name], default=str))
        except Exception as exc:  # one broken fact plugin must not lose the report
            logger.warning("fact %s could not be gathered: %s", name, exc)
    return values


def _refusal(
    recipe_id: str, host: str, missing: dict[str, str], exc: BaseException
) -> str:
    if missing:
        names = ", ".join(f"{name} {version}" for name, version in missing.items())
        return (
            f"Recipe {recipe_id!r} was not run on host {host!r}: the release was "
            f"compiled with plugins this host lacks ({names}), and the recipe "
            f"cannot be loaded without them ({exc}). Install those plugins on the "
            "host, or compile the release without them."
        )
    return f"Recipe {recipe_id!r} could not be loaded on host {host!r}: {exc}"


class _Stopped(BaseException):
    """Raised from the engine's task callback once a stop was requested."""


def _run_engine(
    recipes: Any,
    recipe_ids: list[str],
    bundle: dict[str, Any],
    *,
    host: str,
    state_dir: Path,
    stop: Optional[threading.Event],
) -> RunReport:
    """Run the recipes one by one; on a stop request, finish the current task.

    The report then holds every task that ran and says the run was stopped;
    pending handler notifications are durable, so they run next time.
    """
    from tenfra.engine import run_recipes
    from tenfra.report import RecipeReport, RunReport, Status, combine
    from tenfra.variables import DataVars

    # Other hosts' vars, and vars the compiler took from host or vars sources
    # (``dataVars``), are data: a "${{ }}" in them is never evaluated here.
    layers: list[tuple[str, Any]] = []
    if bundle.get("otherHosts"):
        layers.append(
            ("release otherHosts", DataVars({"otherHosts": bundle["otherHosts"]}))
        )
    values = bundle.get("vars") or {}
    data_names = {str(name) for name in bundle.get("dataVars") or []}
    layers.append(
        ("release vars", {k: v for k, v in values.items() if k not in data_names})
    )
    data = DataVars({k: v for k, v in values.items() if k in data_names})
    if data:
        layers.append(("release vars (data from sources)", data))
    started = _now()
    reports: list[RecipeReport] = []
    error: Optional[str] = None
    for recipe_id in recipe_ids:
        if stop is not None and stop.is_set():
            error = f"The agent was stopped before recipe {recipe_id!r} ran."
            break
        done: list[Any] = []

        def on_task(report: Any, depth: int, done: list[Any] = done) -> None:
            if depth == 0:
                done.append(report)
                if stop is not None and stop.is_set():
                    raise _Stopped

        try:
            one = run_recipes(
                recipes,
                [recipe_id],
                host=host,
                var_layers=layers,
                groups=[str(g) for g in bundle.get("groups") or []],
                state_dir=state_dir,
                on_task=on_task,
            )
        except _Stopped:
            error = (
                f"The agent was stopped (SIGTERM) during recipe {recipe_id!r}, after "
                f"task {done[-1].name!r}; the rest runs on the next start."
            )
            reports.append(
                RecipeReport(
                    id=recipe_id,
                    name=recipes.get(recipe_id).name,
                    status=combine([t.status for t in done]),
                    tasks=done,
                    error=error,
                )
            )
            break
        reports.extend(one.recipes)
        if one.status is Status.FAILED:
            error = one.error
            break
    statuses = [r.status for r in reports]
    return RunReport(
        id=uuid.uuid4().hex,
        host=host,
        started=started,
        finished=_now(),
        status=combine(statuses),
        recipes=reports,
        error=error or next((r.error for r in reports if r.error), None),
    )
