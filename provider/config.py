"""The provider's YAML configuration: classes, defaults and strict loading."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any, Optional

import attrs

from tenfra.convert import StrictTypeError, converter, structure, type_name_of
from tenfra.errors import ConfigError, Location, TenfraError, ValidationError
from tenfra.resource import option
from tenfra.yamlio import load_yaml, locate, to_plain

logger = logging.getLogger(__name__)

ENV_SECRET_KEY = "TENFRA_PROVIDER_SECRET_KEY"  # noqa: S105 (a variable name)
ENV_CONFIG = "TENFRA_PROVIDER_CONFIG"

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_SIZE = re.compile(r"^\s*(\d+)\s*(B|KB|KiB|MB|MiB|GB|GiB)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {
    "b": 1,
    "kb": 1000,
    "kib": 1024,
    "mb": 1000**2,
    "mib": 1024**2,
    "gb": 1000**3,
    "gib": 1024**3,
}


class Duration(float):
    """Seconds, written as a number (``90``) or text (``30d``, ``1h30m``)."""

    @classmethod
    def parse(cls, value: Any) -> Duration:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise StrictTypeError(
                f"expected a duration such as 30, '90s', '15m', '12h' or '30d', "
                f"got {type_name_of(value)}"
            )
        if isinstance(value, (int, float)):
            if value < 0:
                raise StrictTypeError(f"a duration cannot be negative, got {value}")
            return cls(value)
        text = value.strip().replace(" ", "")
        total = 0.0
        position = 0
        for match in _DURATION.finditer(text):
            if match.start() != position:
                break
            total += float(match.group(1)) * _UNITS[match.group(2)]
            position = match.end()
        if not text or position != len(text):
            raise StrictTypeError(
                f"{value!r} is not a duration; write seconds (90) or a number with "
                "a unit: ms, s, m, h, d or w (for example '15m' or '1h30m')"
            )
        return cls(total)


class ByteSize(int):
    """A size in bytes, written as a number (``1048576``) or text (``1MiB``)."""

    @classmethod
    def parse(cls, value: Any) -> ByteSize:
        if isinstance(value, int) and not isinstance(value, bool):
            if value <= 0:
                raise StrictTypeError(f"a size must be positive, got {value}")
            return cls(value)
        if isinstance(value, str):
            match = _SIZE.match(value)
            if match:
                unit = (match.group(2) or "b").lower()
                return cls(int(match.group(1)) * _SIZE_UNITS[unit])
        raise StrictTypeError(
            f"expected a size such as 1048576, '512KiB' or '4MB', got {value!r}"
        )


converter.register_structure_hook(Duration, lambda v, _: Duration.parse(v))
converter.register_structure_hook(ByteSize, lambda v, _: ByteSize.parse(v))


@attrs.frozen(kw_only=True)
class DatabaseConfig:
    """Where the provider keeps hosts, releases and reports."""

    url: str = option(
        "sqlite:///PATH (WAL mode; the default) or postgresql://USER:PASS@HOST/DB.",
        default="sqlite:///tenfra-provider.db",
    )
    busy_timeout: Duration = option(
        "How long a SQLite writer waits for the lock.", factory=lambda: Duration(5)
    )
    max_connections: int = option(
        "Connections per provider process (PostgreSQL pool size).", default=8
    )


@attrs.frozen(kw_only=True)
class ReleasesConfig:
    """Where compiled releases appear (GitOps) and how they are checked."""

    url: str = option("fsspec URL of the release storage (BASE in the release format).")
    assets_url: Optional[str] = option(
        "fsspec URL of the assets; defaults to BASE/assets.", default=None
    )
    storage_options: dict[str, Any] = option(
        "Extra fsspec options, e.g. {endpoint_url: ...} for S3.", factory=dict
    )
    scan_interval: Duration = option(
        "How often new releases are looked for.", factory=lambda: Duration(15)
    )
    public_key: Optional[str] = option(
        "Path of the release signing public key; releases whose manifest "
        "signature does not verify are refused.",
        default=None,
    )
    history: int = option(
        "How many of the newest releases a first scan imports.", default=20
    )


@attrs.frozen(kw_only=True)
class UserConfig:
    """An administrator of the web UI."""

    name: str = option("Login name.")
    password_hash: str = option("Output of 'tenfra provider hash-password'.")


@attrs.frozen(kw_only=True)
class AuthConfig:
    """Administrators, sessions and agent enrolment."""

    users: list[UserConfig] = option("Who may log in to /admin.", factory=list)
    secret_key: Optional[str] = option(
        f"Signs session cookies; the same on every replica (or set {ENV_SECRET_KEY}).",
        default=None,
    )
    session_lifetime: Duration = option(
        "How long an admin stays logged in.", factory=lambda: Duration(12 * 3600)
    )
    token_ttl: Duration = option(
        "Default lifetime of a bootstrap token.", factory=lambda: Duration(24 * 3600)
    )
    approval: bool = option(
        "Allow enrolment without a token, pending an administrator's approval.",
        default=False,
    )
    secure_cookies: bool = option(
        "Send the session cookie over HTTPS only (set when behind TLS).",
        default=False,
    )


@attrs.frozen(kw_only=True)
class RingConfig:
    """One stage of a staged rollout."""

    name: str = option("Shown in the UI and the metrics.")
    hosts: list[str] = option(
        "Host patterns; a host belongs to the first ring it matches."
    )


@attrs.frozen(kw_only=True)
class RolloutConfig:
    """Staged rollouts: rings, promotion and the failure threshold."""

    rings: list[RingConfig] = option(
        "Ordered rings; hosts in no ring form the last, implicit ring.", factory=list
    )
    failure_threshold: float = option(
        "Fraction (0-1) of a ring's hosts that may fail before the rollout pauses.",
        default=0.0,
    )
    auto_promote: bool = option(
        "Promote to the next ring when every host of a ring reported success.",
        default=True,
    )


@attrs.frozen(kw_only=True)
class RetentionConfig:
    """How long history is kept."""

    runs: Duration = option(
        "Run reports older than this are pruned.", factory=lambda: Duration(30 * 86400)
    )
    logs: Duration = option(
        "Log lines older than this are pruned.", factory=lambda: Duration(7 * 86400)
    )
    prune_interval: Duration = option(
        "How often pruning runs.", factory=lambda: Duration(3600)
    )


@attrs.frozen(kw_only=True)
class LimitsConfig:
    """Request size limits of the agent API."""

    max_body: ByteSize = option(
        "Largest request body.", factory=lambda: ByteSize(4 * 1024**2)
    )
    max_log_lines: int = option("Most log lines per request.", default=1000)
    max_line_length: int = option(
        "Longest log line kept (longer ones are cut).", default=8192
    )


@attrs.frozen(kw_only=True)
class HookConfig:
    """A report hook: its type (a report hook plugin) and the plugin's options."""

    type: str
    name: str
    options: dict[str, Any]
    location: str


@attrs.frozen(kw_only=True)
class AgentConfig:
    """What /bootstrap serves."""

    pyz: Optional[str] = option(
        "Path of the agent zipapp; when absent it is built on first request.",
        default=None,
    )
    install_dir: str = option(
        "Where install.sh puts the agent.", default="/usr/local/lib/tenfra"
    )


@attrs.frozen(kw_only=True)
class MetricsConfig:
    """The Prometheus endpoint."""

    token: Optional[str] = option(
        "When set, /metrics needs 'Authorization: Bearer <token>'.", default=None
    )


@attrs.frozen(kw_only=True)
class ServerConfig:
    """Defaults for 'tenfra provider serve' (command-line options win)."""

    bind: str = option("Address and port.", default="127.0.0.1:8080")
    workers: int = option("Worker processes; 0 means 2 x CPUs + 1.", default=0)
    threads: int = option("Threads per worker.", default=1)
    timeout: int = option("Seconds before a stuck worker is restarted.", default=60)
    header_timeout: int = option(
        "Seconds a client has to send a request's line and headers once a "
        "worker thread took its connection; slower clients are disconnected.",
        default=10,
    )


@attrs.frozen(kw_only=True)
class _RawConfig:
    database: DatabaseConfig = attrs.Factory(DatabaseConfig)
    releases: ReleasesConfig
    auth: AuthConfig = attrs.Factory(AuthConfig)
    rollout: RolloutConfig = attrs.Factory(RolloutConfig)
    retention: RetentionConfig = attrs.Factory(RetentionConfig)
    limits: LimitsConfig = attrs.Factory(LimitsConfig)
    agent: AgentConfig = attrs.Factory(AgentConfig)
    metrics: MetricsConfig = attrs.Factory(MetricsConfig)
    server: ServerConfig = attrs.Factory(ServerConfig)
    hooks: list[dict[str, Any]] = attrs.Factory(list)
    redact: list[str] = attrs.Factory(list)
    public_url: Optional[str] = None


@attrs.frozen(kw_only=True)
class ProviderConfig:
    """The whole, validated provider configuration."""

    database: DatabaseConfig = attrs.Factory(DatabaseConfig)
    releases: ReleasesConfig
    auth: AuthConfig = attrs.Factory(AuthConfig)
    rollout: RolloutConfig = attrs.Factory(RolloutConfig)
    retention: RetentionConfig = attrs.Factory(RetentionConfig)
    limits: LimitsConfig = attrs.Factory(LimitsConfig)
    agent: AgentConfig = attrs.Factory(AgentConfig)
    metrics: MetricsConfig = attrs.Factory(MetricsConfig)
    server: ServerConfig = attrs.Factory(ServerConfig)
    hooks: list[HookConfig] = attrs.Factory(list)
    redact: list[str] = attrs.Factory(list)
    public_url: Optional[str] = None
    source: str = "provider.yaml"

    @property
    def secret_key(self) -> str:
        key = os.environ.get(ENV_SECRET_KEY) or self.auth.secret_key
        if not key:
            raise ConfigError(
                f"{self.source}: auth.secretKey is not set; the admin UI signs its "
                f"session cookies with it. Set auth.secretKey or {ENV_SECRET_KEY} to "
                "a long random string (the same on every replica)."
            )
        return key

    @property
    def assets_url(self) -> str:
        return self.releases.assets_url or self.releases.url.rstrip("/") + "/assets"

    @classmethod
    def from_file(cls, path: str | Path) -> ProviderConfig:
        """Read and validate a provider.yaml."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(
                f"{path}: the provider configuration does not exist; check the "
                "--config path (docs/provider.md has an example)."
            ) from None
        except OSError as exc:
            raise ConfigError(
                f"{path}: cannot read the configuration: {exc}."
            ) from None
        return cls.from_text(text, str(path))

    @classmethod
    def from_text(cls, text: str, source: str = "provider.yaml") -> ProviderConfig:
        """Validate a provider configuration given as YAML text."""
        root = load_yaml(text, source)
        if root is None:
            root = {}
        raw = structure(root, _RawConfig, source=source, what="the configuration")
        return _finish(raw, root, source)

    @classmethod
    def from_mapping(
        cls, data: dict[str, Any], source: str = "provider.yaml"
    ) -> ProviderConfig:
        """Validate a configuration given as plain data (tests, embedding)."""
        raw = structure(data, _RawConfig, source=source, what="the configuration")
        return _finish(raw, data, source)


def _bind_problem(bind: str) -> Optional[str]:
    """What is wrong with a ``server.bind`` value, or None."""
    if bind.startswith("unix:"):
        return None
    host, colon, port = bind.rpartition(":")
    if not colon or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        return (
            f"server.bind {bind!r} is not HOST:PORT with a port from 0 to 65535; "
            "write e.g. 127.0.0.1:8080"
        )
    return None


def _finish(raw: _RawConfig, root: Any, source: str) -> ProviderConfig:
    """Check values that need more than types, and resolve report hooks."""

    def fail(path: tuple[Any, ...], problem: str) -> ValidationError:
        return ValidationError(problem, locate(root, path, source))

    db_url = raw.database.url
    if not db_url.startswith(
        ("sqlite:///", "sqlite://:memory:", "postgresql://", "postgres://")
    ):
        raise fail(
            ("database", "url"),
            f"database.url {db_url!r} is not supported; use sqlite:///PATH or "
            "postgresql://USER:PASSWORD@HOST:PORT/DATABASE",
        )
    if raw.database.max_connections < 1:
        raise fail(
            ("database", "maxConnections"), "database.maxConnections must be at least 1"
        )
    if not raw.releases.url:
        raise fail(
            ("releases", "url"), "releases.url must not be empty; give an fsspec URL"
        )
    if raw.releases.scan_interval < 1:
        raise fail(
            ("releases", "scanInterval"), "releases.scanInterval must be at least 1s"
        )
    if raw.releases.history < 1:
        raise fail(("releases", "history"), "releases.history must be at least 1")
    bind_problem = _bind_problem(raw.server.bind)
    if bind_problem:
        raise fail(("server", "bind"), bind_problem)
    key = raw.releases.public_key
    if key is not None and not Path(key).is_file():
        raise fail(
            ("releases", "publicKey"),
            f"releases.publicKey {key!r} does not exist; give the path of the public "
            "key written by 'tenfra keygen'",
        )
    names = set()
    for index, user in enumerate(raw.auth.users):
        if user.name in names:
            raise fail(
                ("auth", "users", index, "name"), f"user {user.name!r} is listed twice"
            )
        names.add(user.name)
        from tenfra.provider.auth import check_hash_format

        problem = check_hash_format(user.password_hash)
        if problem:
            raise fail(("auth", "users", index, "passwordHash"), problem)
    secret = raw.auth.secret_key
    if secret is not None and len(secret) < 16:
        raise fail(
            ("auth", "secretKey"),
            "auth.secretKey is too short; use at least 16 random characters",
        )
    if not 0.0 <= raw.rollout.failure_threshold <= 1.0:
        raise fail(
            ("rollout", "failureThreshold"),
            f"rollout.failureThreshold must be between 0 and 1, got "
            f"{raw.rollout.failure_threshold}",
        )
    ring_names = set()
    for index, ring in enumerate(raw.rollout.rings):
        if ring.name in ring_names:
            raise fail(
                ("rollout", "rings", index, "name"),
                f"ring {ring.name!r} is listed twice",
            )
        ring_names.add(ring.name)
        _check_pattern(ring.hosts, root, ("rollout", "rings", index, "hosts"), source)
    for index, pattern in enumerate(raw.redact):
        try:
            re.compile(pattern)
        except re.error as exc:
            raise fail(
                ("redact", index),
                f"redact pattern {pattern!r} is not a valid regex: {exc}",
            ) from None
    if raw.limits.max_log_lines < 1 or raw.limits.max_line_length < 80:
        raise fail(
            ("limits",), "limits.maxLogLines must be >= 1 and maxLineLength >= 80"
        )
    if raw.public_url is not None and not raw.public_url.startswith(
        ("http://", "https://")
    ):
        raise fail(
            ("publicUrl",),
            f"publicUrl {raw.public_url!r} must start with http:// or https://",
        )
    if raw.server.threads < 1 or raw.server.workers < 0:
        raise fail(("server",), "server.workers must be >= 0 and server.threads >= 1")
    hooks = [_hook(item, index, root, source) for index, item in enumerate(raw.hooks)]
    seen = set()
    for index, hook in enumerate(hooks):
        if hook.name in seen:
            raise fail(
                ("hooks", index, "name"),
                f"hook name {hook.name!r} is used twice; give each hook its own name",
            )
        seen.add(hook.name)
    return ProviderConfig(
        database=raw.database,
        releases=raw.releases,
        auth=raw.auth,
        rollout=raw.rollout,
        retention=raw.retention,
        limits=raw.limits,
        agent=raw.agent,
        metrics=raw.metrics,
        server=raw.server,
        hooks=hooks,
        redact=raw.redact,
        public_url=raw.public_url.rstrip("/") if raw.public_url else None,
        source=source,
    )


def _check_pattern(
    patterns: list[str], root: Any, path: tuple[Any, ...], source: str
) -> None:
    from tenfra.provider.releases import compile_hosts

    try:
        compile_hosts(patterns)
    except TenfraError as exc:
        raise ValidationError(
            str(exc).rstrip("."), locate(root, path, source)
        ) from None


def _hook(item: Any, index: int, root: Any, source: str) -> HookConfig:
    """Split one ``hooks`` entry into type, name and plugin options, and check them."""
    from tenfra.pluginmanager import get_plugin_manager

    path = ("hooks", index)
    where = locate(root, path, source)
    data = to_plain(item)
    kind = data.pop("type", None)
    registry = get_plugin_manager().report_hooks
    known = ", ".join(registry) or "none installed"
    if not isinstance(kind, str):
        raise ValidationError(
            f"hooks[{index}] needs a 'type' naming a report hook plugin ({known})",
            where,
        )
    cls = registry.get(kind)
    if cls is None:
        raise ValidationError(
            f"hooks[{index}]: unknown report hook type {kind!r}; installed types: "
            f"{known}",
            locate(root, (*path, "type"), source),
        )
    name = data.pop("name", f"{kind}-{index + 1}")
    if not isinstance(name, str) or not name:
        raise ValidationError(
            f"hooks[{index}].name must be a non-empty string",
            locate(root, (*path, "name"), source),
        )
    # Validate the options now, so a bad hook fails at start-up, not per report.
    structure(
        data,
        cls.Options,
        source=source,
        root=root,
        base_path=path,
        what=f"hooks[{index}]",
    )
    return HookConfig(
        type=kind, name=name, options=data, location=str(Location(source, where.line))
    )


def load_config(path: Optional[str]) -> ProviderConfig:
    """The configuration at ``path``, or at $TENFRA_PROVIDER_CONFIG."""
    chosen = path or os.environ.get(ENV_CONFIG)
    if not chosen:
        raise ConfigError(
            f"No provider configuration given; pass --config provider.yaml or set "
            f"{ENV_CONFIG}."
        )
    return ProviderConfig.from_file(chosen)
