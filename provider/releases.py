"""Releases on the provider: discovery in storage, rollout rings, pins, rollback.

A release found in storage is recorded once in the database (every replica
agrees on the list).  Each release has a rollout ``ring``: the hosts of rings
``0..ring`` receive it.  With no rings configured a release reaches everyone at
once.  What a host should run is computed by :func:`assign` and stored on its
``host`` row, so a poll is a single-row lookup:

1. the host's own pin, else the global pin;
2. else the newest release that is not rolled back, lists the host, and whose
   rollout has reached the host's ring.

States: ``rolling`` (promoting ring by ring), ``paused`` (failures above the
threshold, or paused by hand), ``complete`` (every ring), ``rolled-back``
(never served again).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import re
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Callable, Iterable, Optional

from tenfra.errors import StorageError, TenfraError, VerificationError

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

    from tenfra.provider.config import ProviderConfig

logger = logging.getLogger(__name__)

RELEASE_NAME = re.compile(r"^(\d{10})-([0-9a-f]{8,64})$")
DIGEST = re.compile(r"^[0-9a-f]{64}$")
GOOD_STATUSES = ("ok", "changed", "skipped")
BAD_STATUSES = ("failed", "rejected")
PIN_KEY = "pin"

ROLLING = "rolling"
PAUSED = "paused"
COMPLETE = "complete"
ROLLED_BACK = "rolled-back"


# -- host patterns -----------------------------------------------------------------


def compile_hosts(patterns: list[str]) -> Callable[[str], bool]:
    """A predicate for host patterns (globs, ranges, regexes; see tenfra.patterns)."""
    from tenfra.patterns import compile_pattern

    pattern = compile_pattern(list(patterns))
    return functools.partial(pattern.matches, groups=())


class Rings:
    """The configured rings; hosts matching none form the last, implicit ring."""

    def __init__(self, config: ProviderConfig) -> None:
        self.names = [ring.name for ring in config.rollout.rings] + ["everyone else"]
        self._matchers = [compile_hosts(ring.hosts) for ring in config.rollout.rings]

    @property
    def last(self) -> int:
        return len(self.names) - 1

    def index(self, host: str) -> int:
        for number, matches in enumerate(self._matchers):
            if matches(host):
                return number
        return self.last


# -- storage -----------------------------------------------------------------------


class Storage:
    """Read-only access to the release storage (fsspec) with small, safe caches.

    Bundles and assets are immutable (their names are digests or release
    names), so caching them per process is safe with any number of replicas.
    """

    def __init__(self, config: ProviderConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._fs: Optional[tuple[AbstractFileSystem, str]] = None
        self._assets_fs: Optional[tuple[AbstractFileSystem, str]] = None
        self._bundles: OrderedDict[tuple[str, str], tuple[bytes, str, list[str]]] = (
            OrderedDict()
        )
        self._bundle_bytes = 0
        self.cache_limit = 64 * 1024 * 1024

    def _open(self, url: str) -> tuple[AbstractFileSystem, str]:
        import fsspec.core

        from tenfra.storage import storage_options

        protocol = url.split("://", 1)[0] if "://" in url else "file"
        options = {**storage_options(protocol), **self.config.releases.storage_options}
        try:
            fs, root = fsspec.core.url_to_fs(url, **options)
        except ImportError as exc:
            raise StorageError(
                f"Release storage {url!r} needs the Python package "
                f"{exc.name or protocol!r}; install it (for S3: pip install "
                "'tenfra[s3]')."
            ) from None
        except (ValueError, TypeError) as exc:
            raise StorageError(
                f"Release storage {url!r} cannot be opened: {exc}. Check "
                "releases.url and releases.storageOptions."
            ) from None
        return fs, str(root).rstrip("/") or "/"

    @property
    def fs(self) -> tuple[AbstractFileSystem, str]:
        with self._lock:
            if self._fs is None:
                self._fs = self._open(self.config.releases.url)
            return self._fs

    @property
    def assets_fs(self) -> tuple[AbstractFileSystem, str]:
        with self._lock:
            if self._assets_fs is None:
                self._assets_fs = self._open(self.config.assets_url)
            return self._assets_fs

    def read(self, key: str, *, optional: bool = False) -> Optional[bytes]:
        from tenfra.storage import join, read_bytes, safe_key

        fs, root = self.fs
        path = join(root, safe_key(key))
        try:
            return read_bytes(fs, path)
        except FileNotFoundError:
            if optional:
                return None
            raise StorageError(
                f"{self.config.releases.url}/{key} is missing from the release "
                "storage; was the release deleted or only partly written?"
            ) from None

    def list_releases(self) -> list[str]:
        from tenfra.storage import join, list_dir

        fs, root = self.fs
        return [
            name
            for name in list_dir(fs, join(root, "releases"))
            if RELEASE_NAME.match(name)
        ]

    def latest(self) -> Optional[str]:
        data = self.read("LATEST", optional=True)
        if data is None:
            return None
        name = data.decode("utf-8", "replace").strip()
        return name if RELEASE_NAME.match(name) else None

    def bundle(
        self, release: str, host: str, digest: str
    ) -> tuple[bytes, str, list[str]]:
        """The bundle bytes, its signature and its asset digests (checked, cached)."""
        key = (release, host)
        with self._lock:
            cached = self._bundles.get(key)
            if cached is not None:
                self._bundles.move_to_end(key)
                return cached
        data = self.read(f"releases/{release}/hosts/{host}.json")
        assert data is not None
        actual = "sha256:" + hashlib.sha256(data).hexdigest()
        if actual != digest:
            raise VerificationError(
                f"The bundle of {host} in release {release} does not match the "
                f"manifest's digest ({actual} != {digest}); the storage was "
                "tampered with or partly rewritten."
            )
        signature = self.read(
            f"releases/{release}/hosts/{host}.json.sig", optional=True
        )
        try:
            parsed = json.loads(data)
            assets = [str(a) for a in parsed.get("assets", [])]
        except (ValueError, AttributeError, TypeError):
            assets = []
        sig = (signature or b"").decode("ascii", "replace").strip()
        entry = (data, sig, assets)
        with self._lock:
            self._bundles[key] = entry
            self._bundle_bytes += len(data)
            while self._bundle_bytes > self.cache_limit and len(self._bundles) > 1:
                _, (old, _, _) = self._bundles.popitem(last=False)
                self._bundle_bytes -= len(old)
        return entry

    def open_asset(self, digest: str) -> Any:
        """A binary file object of an asset, and its size."""
        from tenfra.storage import join

        if not DIGEST.match(digest):
            raise StorageError(f"{digest!r} is not a sha256 digest.")
        fs, root = self.assets_fs
        path = join(root, digest)
        try:
            size = fs.size(path)
            handle = fs.open(path, "rb")
        except FileNotFoundError:
            raise StorageError(
                f"Asset {digest} is missing from {self.config.assets_url}; the "
                "release is incomplete."
            ) from None
        return handle, size

    def check_reachable(self) -> None:
        self.latest()


# -- discovery ---------------------------------------------------------------------


def discover(
    config: ProviderConfig, storage: Storage, rings: Rings, *, force: bool = False
) -> list[str]:
    """Record releases that appeared in storage; returns the names added.

    Reads ``LATEST`` first: when it names a known release, nothing else is
    read.  Only releases up to ``LATEST`` (which the compiler writes last) are
    taken, so a half-written release is never served.
    """
    from tenfra.provider.models import Event, Release, db

    latest = storage.latest()
    if latest is None:
        return []
    known = {r.name for r in Release.select(Release.name)}
    if latest in known and not force:
        return []
    latest_seq = int(latest[:10])
    candidates = [
        n
        for n in storage.list_releases()
        if int(n[:10]) <= latest_seq and n not in known
    ]
    if not known:
        candidates = candidates[-config.releases.history :]
    max_known = (
        Release.select(Release.sequence).order_by(Release.sequence.desc()).scalar() or 0
    )
    added: list[str] = []
    for name in candidates:
        try:
            manifest = _load_manifest(config, storage, name)
        except TenfraError as exc:
            logger.error("release %s refused: %s", name, exc)
            _record_event("provider", "refused", name, str(exc))
            continue
        newest = name == candidates[-1] and int(name[:10]) > max_known
        with db.atomic():
            if _insert_release(name, manifest, rings, newest=newest):
                added.append(name)
                Event.create(
                    time=_now(),
                    actor="provider",
                    action="discovered",
                    subject=name,
                    detail=f"{len(manifest['hosts'])} hosts",
                )
    if added:
        logger.info("new releases: %s", ", ".join(added))
    return added


def _load_manifest(
    config: ProviderConfig, storage: Storage, name: str
) -> dict[str, Any]:
    """Read and verify a manifest (its signature too when a public key is set)."""
    from tenfra.release import verify_manifest

    data = storage.read(f"releases/{name}/manifest.json")
    assert data is not None
    key = config.releases.public_key
    signature = storage.read(f"releases/{name}/manifest.json.sig", optional=True)
    manifest = verify_manifest(
        data,
        signature.strip() if signature and key else None,
        key,
        allow_unsigned=key is None,
    )
    if manifest["sequence"] != int(name[:10]) or not name.endswith(manifest["release"]):
        raise VerificationError(
            f"The manifest of release {name} names release {manifest['release']} "
            f"with sequence {manifest['sequence']}, not its folder; it was refused."
        )
    return manifest


def _insert_release(
    name: str, manifest: dict[str, Any], rings: Rings, *, newest: bool
) -> bool:
    import peewee as pw

    from tenfra.provider.models import Release, ReleaseHost

    hosts: dict[str, str] = manifest["hosts"]
    # Older releases found in a first scan are history: already everywhere.
    state = ROLLING if newest else COMPLETE
    ring = 0 if newest else rings.last
    if state == ROLLING and rings.last == 0:
        state = COMPLETE
    try:
        with Release._meta.database.atomic():
            Release.create(
                name=name,
                release_id=str(manifest["release"]),
                sequence=int(manifest["sequence"]),
                created=str(manifest.get("created", "")),
                expires=manifest.get("expires"),
                discovered=_now(),
                host_count=len(hosts),
                plugins=json.dumps(manifest.get("plugins", {}), sort_keys=True),
                ring=ring,
                state=state,
                changed_at=_now(),
            )
            rows = [
                {"release": name, "host": h, "digest": d}
                for h, d in sorted(hosts.items())
            ]
            for start in range(0, len(rows), 500):
                ReleaseHost.insert_many(rows[start : start + 500]).execute()
    except pw.IntegrityError:
        return False  # another replica recorded it first
    return True


def _now() -> float:
    from tenfra.provider.models import now

    return now()


def _record_event(actor: str, action: str, subject: str, detail: str = "") -> None:
    from tenfra.provider.models import Event

    Event.create(
        time=_now(), actor=actor, action=action, subject=subject, detail=detail
    )


# -- assignment --------------------------------------------------------------------


def _candidates() -> list[Any]:
    """Releases that can be served, newest first, down to the newest complete one."""
    from tenfra.provider.models import Release

    chosen = []
    for release in (
        Release.select()
        .where(Release.state != ROLLED_BACK)
        .order_by(Release.sequence.desc())
    ):
        chosen.append(release)
        if release.state == COMPLETE:
            break
    return chosen


def assign(rings: Rings, hosts: Optional[Iterable[str]] = None) -> int:
    """Recompute the release of every (or the given) enrolled host; returns changes."""
    from tenfra.provider.models import Host, Release, ReleaseHost, db, get_meta

    candidates = _candidates()
    global_pin = get_meta(PIN_KEY)
    pinned_names = {global_pin} if global_pin else set()
    query = Host.select(
        Host.id, Host.name, Host.pin, Host.target_name, Host.target_digest
    ).where(Host.credential_hash.is_null(False))
    if hosts is not None:
        query = query.where(Host.name.in_(list(hosts)))
    rows = list(query)
    pinned_names |= {row.pin for row in rows if row.pin}
    releases = {r.name: r for r in candidates}
    for extra in Release.select().where(
        Release.name.in_(list(pinned_names - set(releases)))
    ):
        releases[extra.name] = extra
    names = [row.name for row in rows]
    digests: dict[tuple[str, str], str] = {}
    for start in range(0, len(names), 900):
        chunk = names[start : start + 900]
        for rh in ReleaseHost.select().where(
            ReleaseHost.release.in_(list(releases)) & ReleaseHost.host.in_(chunk)
        ):
            digests[(rh.release, rh.host)] = rh.digest
    changed = 0
    with db.atomic():
        for row in rows:
            target = None
            pin = row.pin or global_pin
            if pin:
                if (pin, row.name) in digests:
                    target = releases[pin]
            else:
                ring = rings.index(row.name)
                for release in candidates:
                    if (release.name, row.name) in digests and (
                        release.state == COMPLETE or ring <= release.ring
                    ):
                        target = release
                        break
            digest = digests[(target.name, row.name)] if target is not None else None
            name = target.name if target is not None else None
            if name == row.target_name and digest == row.target_digest:
                continue
            Host.update(
                target_name=name,
                target_release=target.release_id if target is not None else None,
                target_sequence=target.sequence if target is not None else None,
                target_digest=digest,
            ).where(Host.id == row.id).execute()
            changed += 1
    if changed:
        logger.info("release assignment changed for %d host(s)", changed)
    return changed


# -- rollout -----------------------------------------------------------------------


def ring_progress(release: Any, rings: Rings) -> list[dict[str, Any]]:
    """Per ring: hosts, succeeded, failed and pending counts for ``release``."""
    import peewee as pw

    from tenfra.provider.models import Host, HostStatus, ReleaseHost

    members: Any = (
        Host.select(Host.name, HostStatus.status, HostStatus.sequence, HostStatus.check)
        .join(ReleaseHost, on=(ReleaseHost.host == Host.name))
        .switch(Host)
        .join(
            HostStatus,
            join_type=pw.JOIN.LEFT_OUTER,
            on=(HostStatus.host == Host.name),
        )
        .where(
            (ReleaseHost.release == release.name) & Host.credential_hash.is_null(False)
        )
        .dicts()
    )
    progress: list[dict[str, Any]] = [
        {"index": i, "name": n, "hosts": 0, "succeeded": 0, "failed": 0, "pending": 0}
        for i, n in enumerate(rings.names)
    ]
    for row in members:
        entry = progress[rings.index(row["name"])]
        entry["hosts"] += 1
        reported = row["sequence"] == release.sequence and not row["check"]
        if reported and row["status"] in BAD_STATUSES:
            entry["failed"] += 1
        elif reported and row["status"] in GOOD_STATUSES:
            entry["succeeded"] += 1
        else:
            entry["pending"] += 1
    return progress


def evaluate(
    config: ProviderConfig, rings: Rings, release_name: Optional[str] = None
) -> list[str]:
    """Promote or pause rolling releases from the reports received; returns actions."""
    from tenfra.provider.models import Release

    query = Release.select().where(Release.state == ROLLING)
    if release_name is not None:
        query = query.where(Release.name == release_name)
    actions = []
    for release in query:
        while release.state == ROLLING:
            progress = ring_progress(release, rings)[release.ring]
            limit = config.rollout.failure_threshold * max(progress["hosts"], 1)
            if progress["failed"] > limit or (progress["failed"] and limit == 0):
                reason = (
                    f"{progress['failed']} of {progress['hosts']} host(s) in ring "
                    f"{progress['name']!r} failed (threshold "
                    f"{config.rollout.failure_threshold:.0%})"
                )
                if _set_state(release, ROLLING, PAUSED, reason, "provider"):
                    actions.append(f"paused {release.name}: {reason}")
                break
            if (
                not config.rollout.auto_promote
                or progress["succeeded"] < progress["hosts"]
            ):
                break
            moved = promote(release, rings, actor="provider", expected_state=ROLLING)
            if not moved:
                break
            actions.append(f"promoted {release.name} to ring {release.ring}")
    if actions:
        assign(rings)
    return actions


def _set_state(
    release: Any, old: str, new: str, reason: Optional[str], actor: str
) -> bool:
    from tenfra.provider.models import Release

    updated = (
        Release.update(state=new, state_reason=reason, changed_at=_now())
        .where((Release.id == release.id) & (Release.state == old))
        .execute()
    )
    if updated:
        release.state = new
        release.state_reason = reason
        _record_event(actor, new, release.name, reason or "")
        logger.warning("release %s %s: %s", release.name, new, reason or "")
    return bool(updated)


def promote(
    release: Any, rings: Rings, *, actor: str, expected_state: Optional[str] = None
) -> bool:
    """Move ``release`` to its next ring (compare-and-set: never two steps at once)."""
    from tenfra.provider.models import Release

    if release.state in (COMPLETE, ROLLED_BACK):
        return False
    if expected_state is not None and release.state != expected_state:
        return False
    new_ring = release.ring + 1
    new_state = COMPLETE if new_ring >= rings.last else ROLLING
    new_ring = min(new_ring, rings.last)
    updated = (
        Release.update(
            ring=new_ring, state=new_state, state_reason=None, changed_at=_now()
        )
        .where(
            (Release.id == release.id)
            & (Release.ring == release.ring)
            & (Release.state == release.state)
        )
        .execute()
    )
    if not updated:
        return False
    release.ring, release.state = new_ring, new_state
    _record_event(actor, "promoted", release.name, f"ring {rings.names[new_ring]}")
    logger.info("release %s promoted to ring %s", release.name, rings.names[new_ring])
    return True


def rollback(release: Any, rings: Rings, *, actor: str) -> None:
    """Stop serving ``release``; its hosts return to the release before it."""
    from tenfra.provider.models import Release, get_meta, set_meta

    if release.state == ROLLED_BACK:
        return
    Release.update(
        state=ROLLED_BACK, state_reason=f"rolled back by {actor}", changed_at=_now()
    ).where(Release.id == release.id).execute()
    if get_meta(PIN_KEY) == release.name:
        set_meta(PIN_KEY, None)
    _record_event(actor, "rolled back", release.name)
    logger.warning("release %s rolled back by %s", release.name, actor)
    assign(rings)


def pause(release: Any, rings: Rings, *, actor: str) -> bool:
    return (
        _set_state(release, release.state, PAUSED, f"paused by {actor}", actor)
        if release.state == ROLLING
        else False
    )


def resume(release: Any, rings: Rings, *, actor: str) -> bool:
    if release.state not in (PAUSED, ROLLED_BACK):
        return False
    changed = _set_state(release, release.state, ROLLING, None, actor)
    if changed and release.ring >= rings.last:
        _set_state(release, ROLLING, COMPLETE, None, actor)
    assign(rings)
    return changed


def set_pin(
    release_name: Optional[str], rings: Rings, *, actor: str, host: Optional[str] = None
) -> None:
    """Pin every host (or one host) to a release; ``None`` removes the pin."""
    from tenfra.provider.models import Host, set_meta

    if host is None:
        set_meta(PIN_KEY, release_name)
        assign(rings)
    else:
        Host.update(pin=release_name).where(Host.name == host).execute()
        assign(rings, [host])
    _record_event(
        actor,
        "pinned" if release_name else "unpinned",
        host or "all hosts",
        release_name or "",
    )
