"""System resource types: package, service, user, group, cron, sysctl."""

from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path
from typing import Any, Optional, Union

import attrs

from tenfra import hookimpl
from tenfra.errors import TaskError
from tenfra.fileops import Metadata, Mode, ensure_content, read_bytes
from tenfra.pluginmanager import Registry
from tenfra.process import Completed, run
from tenfra.resource import Context, ResourceType, Result, option

logger = logging.getLogger(__name__)

_in = attrs.validators.in_


def _names(value: Union[str, list[str]]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _cmd(ctx: Context, argv: list[str], **kwargs: Any) -> Completed:
    return run(argv, log=ctx.log, timeout=ctx.timeout, **kwargs)


def _must(done: Completed, what: str, *, secret: bool = False) -> Completed:
    """``done`` if it succeeded; otherwise a TaskError with its last output lines.

    With ``secret`` the command line (which may hold a password hash) is left
    out of the error's values.
    """
    if done.rc != 0:
        detail = (done.stderr.strip() or done.stdout.strip()).splitlines()[-3:]
        values = done.values()
        if secret:
            values.pop("cmd", None)
        raise TaskError(
            f"{what} failed (exit code {done.rc}): {' / '.join(detail) or 'no output'}",
            values=values,
        )
    return done


# -- package --------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class PackageOptions:
    name: Union[str, list[str]] = option(
        "A package name or a list of names; a list is installed in one "
        "transaction. apt accepts ``name=version``."
    )
    state: str = option(
        "``present`` (installed, any version), ``latest`` (installed and "
        "upgraded) or ``absent``.",
        default="present",
        validator=_in(("present", "latest", "absent")),
    )
    backend: Optional[str] = option(
        "``apt``, ``dnf``, ``yum`` or ``apk``; unset: chosen from the fact "
        "``os_family``, then from the package tools found on the host.",
        default=None,
        validator=attrs.validators.optional(_in(("apt", "dnf", "yum", "apk"))),
    )
    update_cache: bool = option(
        "Refresh the package index before installing. apt refreshes it anyway "
        "when no index has ever been downloaded.",
        default=False,
    )

    def __attrs_post_init__(self) -> None:
        names = _names(self.name)
        if not names:
            raise ValueError("'name' is empty; give at least one package")
        for item in names:
            if not item or item.startswith("-") or any(c.isspace() for c in item):
                raise ValueError(
                    f"{item!r} is not a package name (no spaces, no leading '-')"
                )


class PackageBackend:
    """How one package manager answers and acts; every method runs real tools."""

    name = ""
    tools: tuple[str, ...] = ()
    env: dict[str, str] = {}

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def base(self, spec: str) -> str:
        return spec

    def installed(self, names: list[str]) -> set[str]:
        raise NotImplementedError

    def outdated(self, names: list[str]) -> list[str]:
        raise NotImplementedError

    def needs_index(self) -> bool:
        return False

    def update(self) -> None:
        raise NotImplementedError

    def install(self, names: list[str]) -> None:
        raise NotImplementedError

    def upgrade(self, names: list[str]) -> None:
        raise NotImplementedError

    def remove(self, names: list[str]) -> None:
        raise NotImplementedError

    def _run(self, argv: list[str], what: str) -> Completed:
        return _must(_cmd(self.ctx, argv, env=self.env), what)


class Apt(PackageBackend):
    name = "apt"
    tools = ("apt-get", "dpkg-query")
    env = {"DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C"}
    lists = Path("/var/lib/apt/lists")

    def base(self, spec: str) -> str:
        return spec.split("=", 1)[0]

    def installed(self, names: list[str]) -> set[str]:
        done = _cmd(
            self.ctx,
            ["dpkg-query", "-W", "-f", "${Package}\t${db:Status-Abbrev}\n", "--"]
            + [self.base(n) for n in names],
            env=self.env,
        )
        found = set()
        for line in done.stdout.splitlines():
            package, _, status = line.partition("\t")
            if status.startswith("ii"):
                found.add(package.split(":", 1)[0])
        return found

    def outdated(self, names: list[str]) -> list[str]:
        done = self._run(
            ["apt-get", "-s", "-q", "install", "--", *names],
            "Asking apt what an upgrade would do",
        )
        wanted = {self.base(n) for n in names}
        hits = []
        for line in done.stdout.splitlines():
            if line.startswith("Inst "):
                package = line.split()[1].split(":", 1)[0]
                if package in wanted:
                    hits.append(package)
        return hits

    def needs_index(self) -> bool:
        try:
            return not any(
                p.name.endswith("_Packages") or "_Packages." in p.name
                for p in self.lists.iterdir()
            )
        except FileNotFoundError:
            return True

    def update(self) -> None:
        self._run(["apt-get", "update", "-q"], "Refreshing the apt index")

    def _install(self, names: list[str], what: str) -> None:
        self._run(
            [
                "apt-get",
                "install",
                "-y",
                "-q",
                "-o",
                "Dpkg::Options::=--force-confdef",
                "-o",
                "Dpkg::Options::=--force-confold",
                "--",
                *names,
            ],
            what,
        )

    def install(self, names: list[str]) -> None:
        self._install(names, f"Installing {', '.join(names)} with apt")

    def upgrade(self, names: list[str]) -> None:
        self._install(names, f"Upgrading {', '.join(names)} with apt")

    def remove(self, names: list[str]) -> None:
        self._run(
            ["apt-get", "remove", "-y", "-q", "--", *names],
            f"Removing {', '.join(names)} with apt",
        )


class Dnf(PackageBackend):
    name = "dnf"
    tools = ("dnf", "rpm")
    env = {"LC_ALL": "C"}

    def installed(self, names: list[str]) -> set[str]:
        done = _cmd(
            self.ctx,
            ["rpm", "-q", "--qf", "%{NAME}\t%{VERSION}\n", *names],
            env=self.env,
        )
        return {
            line.split("\t", 1)[0] for line in done.stdout.splitlines() if "\t" in line
        }

    def outdated(self, names: list[str]) -> list[str]:
        done = _cmd(self.ctx, [self.name, "-q", "check-update", *names], env=self.env)
        if done.rc not in (0, 100):
            _must(done, f"Asking {self.name} for updates")
        wanted = set(names)
        hits = []
        for line in done.stdout.splitlines():
            parts = line.split()
            if len(parts) >= 3:
                package = parts[0].rsplit(".", 1)[0]
                if package in wanted:
                    hits.append(package)
        return hits

    def update(self) -> None:
        self._run([self.name, "-q", "makecache"], f"Refreshing the {self.name} cache")

    def install(self, names: list[str]) -> None:
        self._run(
            [self.name, "install", "-y", "-q", *names],
            f"Installing {', '.join(names)} with {self.name}",
        )

    def upgrade(self, names: list[str]) -> None:
        self._run(
            [self.name, "upgrade", "-y", "-q", *names],
            f"Upgrading {', '.join(names)} with {self.name}",
        )

    def remove(self, names: list[str]) -> None:
        self._run(
            [self.name, "remove", "-y", "-q", *names],
            f"Removing {', '.join(names)} with {self.name}",
        )


class Yum(Dnf):
    name = "yum"
    tools = ("yum", "rpm")


class Apk(PackageBackend):
    name = "apk"
    tools = ("apk",)

    def installed(self, names: list[str]) -> set[str]:
        done = _cmd(self.ctx, ["apk", "info", "-e", *names])
        return {line.strip() for line in done.stdout.splitlines() if line.strip()}

    def outdated(self, names: list[str]) -> list[str]:
        done = self._run(
            ["apk", "add", "-s", "-u", *names], "Asking apk what an upgrade would do"
        )
        hits = []
        for line in done.stdout.splitlines():
            match = re.search(r"(?:Upgrading|Installing) (\S+)", line)
            if match and match.group(1) in names:
                hits.append(match.group(1))
        return hits

    def update(self) -> None:
        self._run(["apk", "update", "-q"], "Refreshing the apk index")

    def install(self, names: list[str]) -> None:
        self._run(["apk", "add", "-q", *names], f"Installing {', '.join(names)}")

    def upgrade(self, names: list[str]) -> None:
        self._run(["apk", "add", "-q", "-u", *names], f"Upgrading {', '.join(names)}")

    def remove(self, names: list[str]) -> None:
        self._run(["apk", "del", "-q", *names], f"Removing {', '.join(names)}")


BACKENDS: dict[str, type[PackageBackend]] = {
    "apt": Apt,
    "dnf": Dnf,
    "yum": Yum,
    "apk": Apk,
}
FAMILIES = {
    "debian": ("apt",),
    "ubuntu": ("apt",),
    "redhat": ("dnf", "yum"),
    "rhel": ("dnf", "yum"),
    "fedora": ("dnf", "yum"),
    "centos": ("dnf", "yum"),
    "suse": (),
    "alpine": ("apk",),
}


def _fact(ctx: Context, name: str) -> Any:
    try:
        return ctx.facts.get(name)
    except Exception:  # a fact that cannot be gathered is treated as unknown
        logger.debug("fact %s could not be read", name, exc_info=True)
        return None


def choose_backend(ctx: Context, wanted: Optional[str]) -> PackageBackend:
    """The backend named by ``wanted``, by the ``os_family`` fact, or by tools found."""
    if wanted is not None:
        cls = BACKENDS[wanted]
    else:
        family = str(_fact(ctx, "os_family") or "").lower()
        candidates = FAMILIES.get(family) or tuple(BACKENDS)
        found = [
            name
            for name in candidates
            if all(shutil.which(tool) for tool in BACKENDS[name].tools)
        ]
        if not found:
            raise TaskError(
                "No supported package manager (apt, dnf, yum, apk) was found on "
                f"this host (os_family: {family or 'unknown'}); install one, or "
                "set 'backend'."
            )
        cls = BACKENDS[found[0]]
    missing = [tool for tool in cls.tools if shutil.which(tool) is None]
    if missing:
        raise TaskError(
            f"The package backend {cls.name!r} needs {', '.join(missing)}, which "
            "is not on this host; choose another 'backend'."
        )
    return cls(ctx)


class Package(ResourceType):
    """Install, upgrade or remove system packages with apt, dnf/yum or apk.

    The backend follows the ``os_family`` fact. Already installed packages
    cost one query and no change; a list is installed in one transaction.
    Values: ``backend``, ``installed``, ``upgraded``, ``removed``.

    Example::

        - package: name=nginx
        - package:
            name: [curl, ca-certificates]
            state: latest
            updateCache: true
    """

    name = "package"
    Options = PackageOptions
    free_form = "name"

    def apply(self, options: PackageOptions, ctx: Context) -> Result:
        backend = choose_backend(ctx, options.backend)
        specs = _names(options.name)
        have = backend.installed(specs)
        missing = [s for s in specs if backend.base(s) not in have]
        present = [s for s in specs if backend.base(s) in have]
        values: dict[str, Any] = {
            "backend": backend.name,
            "installed": [],
            "upgraded": [],
            "removed": [],
        }

        if options.state == "absent":
            if not present:
                return Result.ok(values)
            values["removed"] = [backend.base(s) for s in present]
            if not ctx.check:
                backend.remove([backend.base(s) for s in present])
            return Result.changed(
                values,
                message=f"remove {', '.join(values['removed'])}",
                check=ctx.check,
            )

        refresh = options.update_cache or (
            bool(missing or options.state == "latest") and backend.needs_index()
        )
        if refresh and not ctx.check:
            backend.update()
        outdated: list[str] = []
        if options.state == "latest" and present:
            if ctx.check and backend.needs_index():
                return Result.unknown(
                    "check mode: the package index is missing, so it is not "
                    "known whether upgrades exist"
                )
            outdated = backend.outdated(present)
        values["installed"] = missing
        values["upgraded"] = outdated
        if not missing and not outdated:
            return Result.ok(values)
        parts = []
        if missing:
            parts.append(f"install {', '.join(missing)}")
        if outdated:
            parts.append(f"upgrade {', '.join(outdated)}")
        if not ctx.check:
            if missing:
                backend.install(missing)
            if outdated:
                backend.upgrade(outdated)
            have = backend.installed(missing)
            still = [s for s in missing if backend.base(s) not in have]
            if still:
                raise TaskError(
                    f"{backend.name} reported success, but {', '.join(still)} is "
                    "still not installed; check the package name."
                )
        return Result.changed(values, message="; ".join(parts), check=ctx.check)


# -- service --------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class ServiceOptions:
    name: str = option("The service (systemd unit name; ``.service`` optional).")
    state: Optional[str] = option(
        "``started``, ``stopped``, ``restarted`` (always restarts) or "
        "``reloaded`` (always reloads).",
        default=None,
        validator=attrs.validators.optional(
            _in(("started", "stopped", "restarted", "reloaded"))
        ),
    )
    enabled: Optional[bool] = option("Start the service at boot.", default=None)
    daemon_reload: bool = option(
        "Run ``systemctl daemon-reload`` first (after changing unit files).",
        default=False,
    )
    init_script: Optional[str] = option(
        "On a host without systemd: the SysV script to call with ``status``, "
        "``start``, ``stop``...; default ``/etc/init.d/<name>``.",
        default=None,
    )

    def __attrs_post_init__(self) -> None:
        if self.state is None and self.enabled is None and not self.daemon_reload:
            raise ValueError("give 'state', 'enabled' or both")


SYSTEMD_MARK = "/run/systemd/system"
_PAST = {
    "start": "started",
    "stop": "stopped",
    "restart": "restarted",
    "reload": "reloaded",
}
INIT_DIR = "/etc/init.d"


def has_systemd() -> bool:
    """True when systemd is the running init (not merely installed)."""
    return os.path.isdir(SYSTEMD_MARK) and shutil.which("systemctl") is not None


class Service(ResourceType):
    """Start, stop, restart or reload a systemd service, and enable it at boot.

    ``started``/``stopped`` change only what differs; ``restarted`` and
    ``reloaded`` always act (use them from handlers). On a host without
    systemd a SysV script in ``/etc/init.d`` is used for ``state`` when one
    exists; otherwise the task fails with a message that says so.

    Example::

        - service: name=nginx state=started enabled=true
        # in the recipe's handlers:
        - name: reload nginx
          service: {name: nginx, state: reloaded}
    """

    name = "service"
    Options = ServiceOptions
    free_form = "name"

    def apply(self, options: ServiceOptions, ctx: Context) -> Result:
        if has_systemd():
            return self._systemd(options, ctx)
        script = options.init_script or os.path.join(
            INIT_DIR, options.name.removesuffix(".service")
        )
        if os.path.isfile(script) and options.enabled is None:
            return self._sysv(options, ctx, script)
        if os.path.isfile(script):
            why = "'enabled' needs systemd"
        else:
            why = f"there is no SysV script {script}"
        raise TaskError(
            f"Cannot manage the service {options.name!r}: this host does not run "
            f"systemd ({SYSTEMD_MARK} is missing) and {why}. On a container "
            "without an init system, start the program with 'exec' instead, or "
            "use an image that boots systemd."
        )

    def _systemd(self, options: ServiceOptions, ctx: Context) -> Result:
        unit = options.name
        actions: list[str] = []
        if options.daemon_reload and not ctx.check:
            _must(_cmd(ctx, ["systemctl", "daemon-reload"]), "systemctl daemon-reload")
        if options.enabled is not None:
            done = _cmd(ctx, ["systemctl", "is-enabled", unit])
            state = done.stdout.strip()
            if (done.rc != 0 and "No such file" in done.stderr) or state == "not-found":
                raise TaskError(
                    f"The systemd unit {unit!r} does not exist; install its package "
                    "or unit file first (check the name with 'systemctl "
                    "list-unit-files')."
                )
            is_on = state in ("enabled", "enabled-runtime", "static", "alias")
            if options.enabled != is_on and state not in ("static", "indirect"):
                toggle = "enable" if options.enabled else "disable"
                if not ctx.check:
                    _must(_cmd(ctx, ["systemctl", toggle, unit]), f"systemctl {toggle}")
                actions.append(f"{toggle}d")
        if options.state is not None:
            active = _cmd(ctx, ["systemctl", "is-active", "--quiet", unit]).rc == 0
            verb = {
                "started": None if active else "start",
                "stopped": "stop" if active else None,
                "restarted": "restart",
                "reloaded": "reload",
            }[options.state]
            if verb is not None:
                if not ctx.check:
                    _must(_cmd(ctx, ["systemctl", verb, unit]), f"systemctl {verb}")
                actions.append(_PAST[verb])
        values = {"name": unit, "actions": actions}
        if not actions:
            return Result.ok(values)
        return Result.changed(
            values, message=f"{unit}: {', '.join(actions)}", check=ctx.check
        )

    def _sysv(self, options: ServiceOptions, ctx: Context, script: str) -> Result:
        running = _cmd(ctx, [script, "status"]).rc == 0
        verb = {
            "started": None if running else "start",
            "stopped": "stop" if running else None,
            "restarted": "restart",
            "reloaded": "reload",
            None: None,
        }[options.state]
        values = {"name": options.name, "actions": [verb] if verb else []}
        if verb is None:
            return Result.ok(values)
        if not ctx.check:
            _must(_cmd(ctx, [script, verb]), f"{script} {verb}")
        return Result.changed(
            values, message=f"{options.name}: {verb} (SysV script)", check=ctx.check
        )


# -- user and group -------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class UserOptions:
    name: str = option("The login name.")
    state: str = option(
        "``present`` or ``absent``.",
        default="present",
        validator=_in(("present", "absent")),
    )
    uid: Optional[int] = option("The user id.", default=None)
    group: Optional[str] = option("The primary group (must exist).", default=None)
    groups: Optional[list[str]] = option(
        "Supplementary groups; the user leaves groups not listed unless "
        "``append`` is true.",
        default=None,
    )
    append: bool = option(
        "Only add the user to ``groups``, never remove it from others.",
        default=False,
    )
    home: Optional[str] = option("The home folder.", default=None)
    shell: Optional[str] = option("The login shell.", default=None)
    comment: Optional[str] = option("The GECOS comment (full name).", default=None)
    system: bool = option(
        "Create a system account (low id, no home by default).", default=False
    )
    create_home: bool = option(
        "Create the home folder when the user is created.", default=True
    )
    password: Optional[str] = option(
        "The password *hash* (``openssl passwd -6``), never the plain password; "
        "it never appears in logs or results.",
        default=None,
    )
    remove_home: bool = option(
        "With ``state: absent``: also remove the home folder and mail spool.",
        default=False,
    )

    def __attrs_post_init__(self) -> None:
        if not re.match(r"^[a-z_][a-z0-9_.-]*\$?$", self.name, re.IGNORECASE):
            raise ValueError(f"{self.name!r} is not a valid user name")


def _shadow_hash(name: str) -> Optional[str]:
    try:
        text = Path("/etc/shadow").read_text(encoding="utf-8")
    except OSError:
        return None
    for line in text.splitlines():
        fields = line.split(":")
        if fields and fields[0] == name and len(fields) > 1:
            return fields[1]
    return None


def _member_of(name: str) -> set[str]:
    import grp

    return {g.gr_name for g in grp.getgrall() if name in g.gr_mem}


class User(ResourceType):
    """Create, change or remove a local user account (useradd/usermod/userdel).

    Only the attributes given are managed; each is compared with the
    account database first.

    Example::

        - user:
            name: app
            system: true
            home: /srv/app
            shell: /usr/sbin/nologin
            groups: [www-data]
    """

    name = "user"
    Options = UserOptions
    free_form = "name"

    def apply(self, options: UserOptions, ctx: Context) -> Result:
        import grp
        import pwd

        try:
            entry: Optional[pwd.struct_passwd] = pwd.getpwnam(options.name)
        except KeyError:
            entry = None
        values: dict[str, Any] = {"name": options.name}
        if options.state == "absent":
            if entry is None:
                return Result.ok(values)
            if not ctx.check:
                argv = [
                    "userdel",
                    *(["-r"] if options.remove_home else []),
                    options.name,
                ]
                _must(_cmd(ctx, argv), f"userdel {options.name}")
            return Result.changed(
                values, message=f"removed user {options.name}", check=ctx.check
            )

        for group in [options.group, *(options.groups or [])]:
            if group is None:
                continue
            try:
                grp.getgrnam(group)
            except KeyError:
                if not group.isdigit():
                    raise TaskError(
                        f"The group {group!r} for user {options.name!r} does not "
                        "exist; create it first with the 'group' resource."
                    ) from None

        if entry is None:
            argv = ["useradd"]
            if options.uid is not None:
                argv += ["-u", str(options.uid)]
            if options.group is not None:
                argv += ["-g", options.group]
            if options.groups:
                argv += ["-G", ",".join(options.groups)]
            if options.home is not None:
                argv += ["-d", options.home]
            if options.shell is not None:
                argv += ["-s", options.shell]
            if options.comment is not None:
                argv += ["-c", options.comment]
            if options.system:
                argv.append("-r")
            argv.append("-m" if options.create_home and not options.system else "-M")
            if options.password is not None:
                argv += ["-p", options.password]
            argv.append(options.name)
            if not ctx.check:
                _must(
                    _cmd(ctx, argv, quiet=True), f"useradd {options.name}", secret=True
                )
                values["uid"] = pwd.getpwnam(options.name).pw_uid
            return Result.changed(
                values, message=f"created user {options.name}", check=ctx.check
            )

        values["uid"] = entry.pw_uid
        argv = ["usermod"]
        changes = []
        if options.uid is not None and options.uid != entry.pw_uid:
            argv += ["-u", str(options.uid)]
            changes.append(f"uid {entry.pw_uid} -> {options.uid}")
        if options.group is not None:
            gid = (
                int(options.group)
                if options.group.isdigit()
                else grp.getgrnam(options.group).gr_gid
            )
            if gid != entry.pw_gid:
                argv += ["-g", options.group]
                changes.append(f"primary group -> {options.group}")
        if options.groups is not None:
            current = _member_of(options.name)
            wanted = set(options.groups)
            if options.append:
                if not wanted <= current:
                    argv += ["-a", "-G", ",".join(sorted(wanted - current))]
                    changes.append(f"groups + {', '.join(sorted(wanted - current))}")
            elif wanted != current:
                argv += ["-G", ",".join(sorted(wanted))]
                changes.append(f"groups {sorted(current)} -> {sorted(wanted)}")
        for flag, wanted_value, have, label in (
            ("-d", options.home, entry.pw_dir, "home"),
            ("-s", options.shell, entry.pw_shell, "shell"),
            ("-c", options.comment, entry.pw_gecos, "comment"),
        ):
            if wanted_value is not None and wanted_value != have:
                argv += [flag, wanted_value]
                changes.append(f"{label} {have!r} -> {wanted_value!r}")
        if (
            options.password is not None
            and _shadow_hash(options.name) != options.password
        ):
            argv += ["-p", options.password]
            changes.append("password")
        if not changes:
            return Result.ok(values)
        if not ctx.check:
            argv.append(options.name)
            _must(_cmd(ctx, argv, quiet=True), f"usermod {options.name}", secret=True)
        return Result.changed(
            values,
            message=f"user {options.name}: {', '.join(changes)}",
            check=ctx.check,
        )


@attrs.frozen(kw_only=True)
class GroupOptions:
    name: str = option("The group name.")
    state: str = option(
        "``present`` or ``absent``.",
        default="present",
        validator=_in(("present", "absent")),
    )
    gid: Optional[int] = option("The group id.", default=None)
    system: bool = option("Create a system group (low id).", default=False)

    def __attrs_post_init__(self) -> None:
        if not re.match(r"^[a-z_][a-z0-9_.-]*$", self.name, re.IGNORECASE):
            raise ValueError(f"{self.name!r} is not a valid group name")


class Group(ResourceType):
    """Create, change the id of, or remove a local group.

    Example::

        - group: name=deploy gid=2000
    """

    name = "group"
    Options = GroupOptions
    free_form = "name"

    def apply(self, options: GroupOptions, ctx: Context) -> Result:
        import grp

        try:
            entry: Optional[grp.struct_group] = grp.getgrnam(options.name)
        except KeyError:
            entry = None
        values: dict[str, Any] = {"name": options.name}
        if options.state == "absent":
            if entry is None:
                return Result.ok(values)
            if not ctx.check:
                _must(_cmd(ctx, ["groupdel", options.name]), "groupdel")
            return Result.changed(
                values, message=f"removed group {options.name}", check=ctx.check
            )
        if entry is None:
            argv = ["groupadd"]
            if options.gid is not None:
                argv += ["-g", str(options.gid)]
            if options.system:
                argv.append("-r")
            argv.append(options.name)
            if not ctx.check:
                _must(_cmd(ctx, argv), f"groupadd {options.name}")
                values["gid"] = grp.getgrnam(options.name).gr_gid
            return Result.changed(
                values, message=f"created group {options.name}", check=ctx.check
            )
        values["gid"] = entry.gr_gid
        if options.gid is None or options.gid == entry.gr_gid:
            return Result.ok(values)
        if not ctx.check:
            argv = ["groupmod", "-g", str(options.gid), options.name]
            _must(_cmd(ctx, argv), f"groupmod {options.name}")
            values["gid"] = options.gid
        return Result.changed(
            values,
            message=f"group {options.name}: gid {entry.gr_gid} -> {options.gid}",
            check=ctx.check,
        )


# -- cron -----------------------------------------------------------------------------

_CRON_SPECIAL = (
    "@reboot",
    "@yearly",
    "@annually",
    "@monthly",
    "@weekly",
    "@daily",
    "@midnight",
    "@hourly",
)
_CRON_FIELD = re.compile(r"^[0-9A-Za-z*/,\-]+$")
_CRON_BREAK = re.compile(r"[\r\n\0]")
_CRON_USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}\$?")


@attrs.frozen(kw_only=True)
class CronOptions:
    name: str = option(
        "The job's name: letters, digits, ``-`` and ``_`` (cron ignores files "
        "with dots). Names the managed block and the default file."
    )
    job: Optional[str] = option("The command line to run.", default=None)
    schedule: str = option(
        "Five fields (``minute hour day month weekday``) or ``@daily``, "
        "``@hourly``, ``@reboot``...",
        default="@daily",
    )
    user: str = option("The user the job runs as.", default="root")
    env: dict[str, str] = option(
        "Variables set for the job (``MAILTO``, ``PATH``...).", factory=dict
    )
    state: str = option(
        "``present`` or ``absent``.",
        default="present",
        validator=_in(("present", "absent")),
    )
    file: Optional[str] = option(
        "The cron file holding the block; default ``/etc/cron.d/<name>``.",
        default=None,
    )

    def __attrs_post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_-]+", self.name):
            raise ValueError(
                f"cron job name {self.name!r} may only use letters, digits, '-' and '_'"
            )
        if self.state == "present" and not self.job:
            raise ValueError("state 'present' needs 'job', the command to run")
        if self.job is not None and _CRON_BREAK.search(self.job):
            raise ValueError("'job' is one line; put a script in a file and call it")
        if not _CRON_USER.fullmatch(self.user):
            raise ValueError(
                f"user {self.user!r} is not a user name; use letters, digits, "
                "'_', '.' and '-' (at most 32, no spaces or '#')"
            )
        fields = self.schedule.split()
        if _CRON_BREAK.search(self.schedule) or not (
            (len(fields) == 1 and fields[0] in _CRON_SPECIAL)
            or (len(fields) == 5 and all(_CRON_FIELD.match(f) for f in fields))
        ):
            raise ValueError(
                f"schedule {self.schedule!r} is not a cron schedule; write five "
                "fields like '*/5 * * * *' or a keyword like '@daily'"
            )
        for key, value in self.env.items():
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
                raise ValueError(
                    f"env name {key!r} is not a valid variable name; use letters, "
                    "digits and '_', not starting with a digit"
                )
            if _CRON_BREAK.search(value):
                raise ValueError(
                    f"env value of {key} must be one line: it may not hold a line "
                    "break or a NUL character"
                )


class Cron(ResourceType):
    """Manage a cron job as a marked block in a file under ``/etc/cron.d``.

    Other lines in the file are kept, so several jobs may share one ``file``.
    When the last block is removed, the file is removed.

    Example::

        - cron:
            name: backup
            schedule: "30 2 * * *"
            user: backup
            job: /usr/local/bin/backup --quiet
            env: {MAILTO: ops@example.org}
    """

    name = "cron"
    Options = CronOptions
    free_form = None

    def apply(self, options: CronOptions, ctx: Context) -> Result:
        from tenfra.plugins.files import LineOptions, edit_lines

        path = options.file or f"/etc/cron.d/{options.name}"
        old = read_bytes(path)
        values = {"path": path, "name": options.name}
        if old is None and options.state == "absent":
            return Result.ok(values)
        lines = (old or b"").decode("utf-8", errors="replace").splitlines()
        body = [f"{key}={value}" for key, value in sorted(options.env.items())]
        body.append(f"{options.schedule} {options.user} {options.job or ''}".rstrip())
        edit = LineOptions(
            path=path,
            block="\n".join(body),
            marker=f"# {{mark}} TENFRA CRON {options.name}",
            state=options.state,
        )
        new_lines = edit_lines(lines, edit)
        if new_lines == lines:
            return Result.ok(values)
        if options.state == "absent" and not any(x.strip() for x in new_lines):
            if not ctx.check:
                os.unlink(path)
            from tenfra.fileops import unified_diff

            diff = unified_diff(old, None, path) if ctx.diff else None
            return Result.changed(
                values, diff=diff, message=f"removed {path}", check=ctx.check
            )
        data = ("\n".join(new_lines) + "\n").encode("utf-8")
        outcome = ensure_content(
            path,
            data,
            Metadata(mode=Mode("0644")),
            check=ctx.check,
            diff=ctx.diff,
            sensitive=ctx.sensitive,
        )
        return Result.changed(
            values,
            diff=outcome.diff,
            message=f"{path}: cron job {options.name} {options.state}",
            check=ctx.check,
        )


# -- sysctl ---------------------------------------------------------------------------

PROC_SYS = Path("/proc/sys")


@attrs.frozen(kw_only=True)
class SysctlOptions:
    name: str = option("The kernel parameter, such as ``net.ipv4.ip_forward``.")
    value: Optional[Union[str, int]] = option(
        "The value (required with ``state: present``).", default=None
    )
    state: str = option(
        "``present`` (persisted in ``file``) or ``absent`` (removed from ``file``;"
        " the running value is left as it is).",
        default="present",
        validator=_in(("present", "absent")),
    )
    file: str = option(
        "The file under ``/etc/sysctl.d`` that persists the value.",
        default="/etc/sysctl.d/99-tenfra.conf",
    )
    apply: bool = option(
        "Also set the running value through ``/proc/sys`` now.", default=True
    )

    def __attrs_post_init__(self) -> None:
        if not re.match(r"^[A-Za-z0-9_][A-Za-z0-9_.\-/]*$", self.name) or ".." in (
            self.name
        ):
            raise ValueError(f"{self.name!r} is not a sysctl name")
        if self.state == "present" and self.value is None:
            raise ValueError("state 'present' needs 'value'")


def _normal(value: str) -> str:
    return " ".join(value.split())


def _proc_path(name: str) -> Path:
    return PROC_SYS / name.replace(".", "/") if "/" not in name else PROC_SYS / name


class Sysctl(ResourceType):
    """Set a kernel parameter now and persist it in a file under /etc/sysctl.d.

    The file's line and the running value (read from ``/proc/sys``) are
    compared separately; either one differing is a change.

    Example::

        - sysctl: name=net.ipv4.ip_forward value=1
        - sysctl:
            name: vm.swappiness
            value: 10
            file: /etc/sysctl.d/60-memory.conf
    """

    name = "sysctl"
    Options = SysctlOptions

    def apply(self, options: SysctlOptions, ctx: Context) -> Result:
        from tenfra.plugins.files import LineOptions, edit_lines

        value = None if options.value is None else _normal(str(options.value))
        proc = _proc_path(options.name)
        if options.apply and options.state == "present" and not proc.is_file():
            raise TaskError(
                f"The kernel has no parameter {options.name!r} ({proc} is missing); "
                "check the name, or load the module that provides it."
            )
        changes = []
        old = read_bytes(options.file)
        lines = (old or b"").decode("utf-8", errors="replace").splitlines()
        key = re.escape(options.name)
        edit = LineOptions(
            path=options.file,
            line=f"{options.name} = {value}" if value is not None else None,
            regexp=rf"^\s*{key}\s*=",
            state=options.state,
        )
        new_lines = edit_lines(lines, edit)
        diff = None
        if new_lines != lines:
            data = ("\n".join(new_lines) + "\n").encode("utf-8")
            parent = os.path.dirname(options.file)
            if parent and not os.path.isdir(parent) and not ctx.check:
                os.makedirs(parent, mode=0o755)
            outcome = ensure_content(
                options.file,
                data,
                Metadata(),
                check=ctx.check,
                diff=ctx.diff,
                sensitive=ctx.sensitive,
            )
            diff = outcome.diff
            changes.append(f"{options.file} updated")

        current = None
        if options.apply and options.state == "present" and value is not None:
            current = _normal(proc.read_text())
            if current != value:
                if not ctx.check:
                    try:
                        proc.write_text(value + "\n")
                    except OSError as exc:
                        raise TaskError(
                            f"Cannot set {options.name} to {value!r}: "
                            f"{exc.strerror or exc} ({proc} is read-only inside "
                            "most containers); set 'apply: false' to only write "
                            "the file."
                        ) from None
                changes.append(f"{options.name} {current} -> {value}")
        values = {"name": options.name, "value": value, "previous": current}
        if not changes:
            return Result.ok(values)
        return Result.changed(
            values, diff=diff, message="; ".join(changes), check=ctx.check
        )


RESOURCE_TYPES: list[type[ResourceType]] = [Package, Service, User, Group, Cron, Sysctl]


@hookimpl
def tenfra_add_resource_types(registry: Registry[Any]) -> None:
    for cls in RESOURCE_TYPES:
        registry.add_resource_type(cls)
