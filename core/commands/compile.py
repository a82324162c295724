"""``tenfra compile``, ``tenfra diff`` and ``tenfra keygen``: releases from the CLI."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import sys
from pathlib import Path
from typing import Any, Optional

import click

from tenfra.errors import EXIT_FAILED, UsageError, UserError
from tenfra.release import SEQUENCE_WIDTH

logger = logging.getLogger(__name__)

ENV_INVENTORY = "TENFRA_INVENTORY"
ENV_SIGNING_KEY = "TENFRA_SIGNING_KEY"
DEFAULT_KEY = "tenfra-signing.key"

_DURATION = re.compile(r"(\d+)\s*([smhdw]?)")
_UNITS = {"s": 1, "": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> dt.timedelta:
    """``30d``, ``12h``, ``90m``, ``3600s``, ``2w`` or a number of seconds."""
    found = _DURATION.fullmatch(text.strip().lower())
    if found is None or int(found.group(1)) == 0:
        raise UsageError(
            f"--valid-for {text!r} is not a duration; write a positive number with "
            "a unit, such as 30d, 12h, 90m or 2w."
        )
    return dt.timedelta(seconds=int(found.group(1)) * _UNITS[found.group(2)])


def parse_created(text: str) -> dt.datetime:
    """An ISO 8601 time (UTC when no offset) or seconds since 1970."""
    from tenfra.release import parse_time

    value = text.strip()
    try:
        if value.isdigit():
            return dt.datetime.fromtimestamp(int(value), dt.timezone.utc)
        return parse_time(value)
    except (ValueError, OverflowError):
        raise UsageError(
            f"--created {text!r} is not a time; write ISO 8601 such as "
            "2024-05-01T12:00:00Z, or seconds since 1970."
        ) from None


def _progress(phase: str, done: int, total: int) -> None:
    click.echo(f"compile: {phase} {done}/{total} hosts", err=True)


@click.command("compile")
@click.option(
    "-i",
    "--inventory",
    "inventory_path",
    default=lambda: os.environ.get(ENV_INVENTORY, "inventory.yaml"),
    show_default=f"${ENV_INVENTORY} or inventory.yaml",
    type=click.Path(path_type=Path),
    help="The inventory file (or a folder holding inventory.yaml).",
)
@click.option(
    "--recipes",
    "recipes_dir",
    default="recipes",
    show_default=True,
    type=click.Path(path_type=Path),
    help="The recipes folder; site plugins are read from plugins/ beside it.",
)
@click.option(
    "--plugins-dir",
    type=click.Path(path_type=Path),
    help="The site plugins folder (default: plugins/ beside the recipes folder).",
)
@click.option(
    "--out",
    "-o",
    required=True,
    help="Where to write the release: a folder, file://, s3://BUCKET/PREFIX, ...",
)
@click.option(
    "--signing-key",
    type=click.Path(path_type=Path),
    help=f"The ed25519 private key (PEM) that signs the release [${ENV_SIGNING_KEY}].",
)
@click.option(
    "--unsigned",
    is_flag=True,
    help="Write an unsigned release (agents refuse it unless told to accept it).",
)
@click.option(
    "--sequence",
    type=click.IntRange(min=1, max=10**SEQUENCE_WIDTH - 1),
    help="The release sequence, at most ten digits (default: the latest sequence "
    "at --out plus one).",
)
@click.option(
    "--created",
    help="Creation time, ISO 8601 or epoch seconds (default: $SOURCE_DATE_EPOCH "
    "or now).",
)
@click.option(
    "--valid-for",
    default="30d",
    show_default=True,
    help="How long agents accept the release (s, m, h, d or w).",
)
@click.option(
    "--progress-every",
    default=1000,
    show_default=True,
    type=click.IntRange(min=1),
    help="Report progress on standard error every N hosts.",
)
@click.option(
    "--rollback-to",
    metavar="RELEASE",
    help="Instead of compiling, publish the content of an older release at --out "
    "again under a new, higher sequence with fresh signatures (a folder name, a "
    "sequence or a release id). Agents never accept the old release itself.",
)
@click.option(
    "--public-key",
    "public_keys",
    multiple=True,
    type=click.Path(path_type=Path),
    help="With --rollback-to: a public key the old release may be signed with "
    "(repeatable; default: the signing key's own).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def compile_(
    *,
    inventory_path: Path,
    recipes_dir: Path,
    plugins_dir: Optional[Path],
    out: str,
    signing_key: Optional[Path],
    unsigned: bool,
    sequence: Optional[int],
    created: Optional[str],
    valid_for: str,
    progress_every: int,
    rollback_to: Optional[str],
    public_keys: tuple[Path, ...],
    as_json: bool,
) -> None:
    """Compile recipes, inventory and site plugins into a signed release at --out.

    Every host gets its own bundle: only the recipes that target it (and their
    dependencies), its own vars and the otherHosts vars its recipes ask for.
    The same inputs give the same release id and bytes; when nothing changed
    since the latest release at --out, nothing is written.

    \b
    With --rollback-to, nothing is compiled: the content of an older release
    is verified and published again as the newest release, so that agents,
    which refuse older sequences, return to it.

    \b
    Examples:
      tenfra keygen
      tenfra compile --out releases/ --signing-key tenfra-signing.key
      TENFRA_S3_ENDPOINT_URL=http://127.0.0.1:9000 \\
        tenfra compile --out s3://bucket/tenfra --signing-key key.pem
      tenfra compile --rollback-to 0000000041-3f2a9c --out releases/ \\
        --signing-key tenfra-signing.key
    """
    from tenfra.compiler import CompileOptions, compile_release
    from tenfra.release import load_private_key

    if signing_key is None and os.environ.get(ENV_SIGNING_KEY):
        signing_key = Path(os.environ[ENV_SIGNING_KEY])
    if signing_key is not None and unsigned:
        raise UsageError(
            "--unsigned and a signing key (--signing-key or TENFRA_SIGNING_KEY) "
            "contradict each other; give one of them."
        )
    if rollback_to is not None:
        _rollback(
            rollback_to,
            out=out,
            signing_key=signing_key,
            unsigned=unsigned,
            public_keys=public_keys,
            sequence=sequence,
            created=created,
            valid_for=valid_for,
            as_json=as_json,
        )
        return
    if public_keys:
        raise UsageError("--public-key is used only with --rollback-to.")
    key = load_private_key(signing_key) if signing_key is not None else None
    options = CompileOptions(
        inventory=inventory_path,
        recipes=recipes_dir,
        out=out,
        plugins_dir=plugins_dir,
        signing_key=key,
        unsigned=unsigned,
        sequence=sequence,
        created=parse_created(created) if created else None,
        valid_for=parse_duration(valid_for),
        progress_every=progress_every,
    )

    def progress(phase: str, done: int, total: int) -> None:
        if total > progress_every:
            _progress(phase, done, total)

    result = compile_release(options, progress=progress)
    if as_json:
        click.echo(json.dumps(_result_json(result), indent=2))
    elif result.unchanged:
        click.echo(
            f"Unchanged: release {result.name} at {out} already holds these inputs; "
            "nothing was written."
        )
    else:
        signed = f"signed with key {result.key_id}" if result.signed else "UNSIGNED"
        click.echo(
            f"Release {result.name} written to {out}: {result.hosts} hosts, "
            f"{result.recipes} recipes, {result.assets} assets "
            f"({result.assets_written} new), {signed}, in {result.seconds:.1f} s."
        )
    if unsigned and not result.unchanged:
        click.secho(
            "warning: this release is unsigned; agents refuse it unless they are "
            "configured to accept unsigned releases. Sign real releases with "
            "--signing-key.",
            err=True,
            fg="yellow",
        )


def _result_json(result: Any) -> dict[str, Any]:
    return {
        "release": result.release,
        "sequence": result.sequence,
        "name": result.name,
        "url": result.url,
        "unchanged": result.unchanged,
        "hosts": result.hosts,
        "recipes": result.recipes,
        "assets": result.assets,
        "assetsWritten": result.assets_written,
        "bytesWritten": result.bytes_written,
        "signed": result.signed,
        "keyId": result.key_id,
        "warnings": list(result.warnings),
        "seconds": round(result.seconds, 3),
    }


def _rollback(
    source: str,
    *,
    out: str,
    signing_key: Optional[Path],
    unsigned: bool,
    public_keys: tuple[Path, ...],
    sequence: Optional[int],
    created: Optional[str],
    valid_for: str,
    as_json: bool,
) -> None:
    """``compile --rollback-to``: re-issue an older release as the newest one."""
    from tenfra.compiler import ReissueOptions, reissue_release
    from tenfra.release import load_private_key, load_public_key

    if unsigned or signing_key is None:
        raise UsageError(
            "--rollback-to needs --signing-key (or TENFRA_SIGNING_KEY): the "
            "re-issued release is signed again, and agents refuse unsigned ones."
        )
    trusted = [load_public_key(path) for path in public_keys]
    result = reissue_release(
        ReissueOptions(
            out=out,
            source=source,
            signing_key=load_private_key(signing_key),
            trusted_keys=tuple(trusted),
            sequence=sequence,
            created=parse_created(created) if created else None,
            valid_for=parse_duration(valid_for),
        )
    )
    for warning in result.warnings:
        click.secho(f"warning: {warning}", err=True, fg="yellow")
    if as_json:
        click.echo(json.dumps(_result_json(result), indent=2))
        return
    click.echo(
        f"Release {result.name} written to {out}: the content of release "
        f"{result.release} re-issued for {result.hosts} hosts, signed with key "
        f"{result.key_id}, in {result.seconds:.1f} s."
    )


def _split_ref(text: str) -> tuple[str, Optional[str]]:
    """``BASE#SELECTOR`` into the URL and the release selector."""
    if "#" in text:
        url, _, selector = text.rpartition("#")
        if url and selector:
            return url, selector
    return text, None


def _open(text: str) -> Any:
    from tenfra.release import open_release

    url, selector = _split_ref(text)
    return open_release(url, selector)


def _format_host(diff: Any) -> list[str]:
    lines = [f"{diff.host}: {diff.status}"]
    for recipe_id, details in diff.recipes.items():
        lines.append(f"  recipe {recipe_id}: {', '.join(details)}")
    for kind, names in diff.vars.items():
        lines.append(f"  vars {kind}: {', '.join(names)}")
    for kind, names in diff.other_hosts.items():
        lines.append(f"  otherHosts {kind}: {', '.join(names)}")
    for kind, names in diff.groups.items():
        lines.append(f"  groups {kind}: {', '.join(names)}")
    for kind, names in diff.site_plugins.items():
        lines.append(f"  site plugins {kind}: {', '.join(names)}")
    for kind, names in diff.assets.items():
        shown = ", ".join(name[:12] for name in names)
        lines.append(f"  assets {kind}: {shown}")
    if diff.run is not None:
        lines.append(f"  run order: {diff.run['old']} -> {diff.run['new']}")
    return lines


@click.command("diff")
@click.argument("old")
@click.argument("new")
@click.option(
    "--host", "hosts", multiple=True, help="Only this host (repeat for several)."
)
@click.option(
    "--public-key",
    type=click.Path(path_type=Path),
    help="Verify both releases with this public key before comparing.",
)
@click.option(
    "--all", "show_all", is_flag=True, help="Also list hosts that do not change."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option(
    "--exit-code",
    is_flag=True,
    help="Exit with 1 when something changes (like 'git diff --exit-code').",
)
def diff(
    *,
    old: str,
    new: str,
    hosts: tuple[str, ...],
    public_key: Optional[Path],
    show_all: bool,
    as_json: bool,
    exit_code: bool,
) -> None:
    """Show per host which recipes, vars and assets change from OLD to NEW.

    OLD and NEW are release folders (BASE/releases/NNNNNNNNNN-ID), or a base
    URL for its latest release, or BASE#N for sequence N (BASE#ID for a
    release id or a unique prefix of one).  Var values are never shown, only
    their names.

    \b
    Examples:
      tenfra diff releases/#4 releases/
      tenfra diff s3://bucket/tenfra#12 s3://bucket/tenfra --host web-01
    """
    from tenfra.compiler import diff_releases, verify_release

    before = _open(old)
    after = _open(new)
    if public_key is not None:
        for release in (before, after):
            verify_release(release, public_key)
    diffs = diff_releases(before, after, list(hosts) or None)
    changed = [d for d in diffs if d.status != "unchanged"]
    plugins_old = before.manifest.get("plugins", {})
    plugins_new = after.manifest.get("plugins", {})
    if as_json:
        shown = diffs if show_all or hosts else changed
        click.echo(
            json.dumps(
                {
                    "old": before.name,
                    "new": after.name,
                    "plugins": _plugin_changes(plugins_old, plugins_new),
                    "hosts": [d.to_json() for d in shown],
                },
                indent=2,
                sort_keys=True,
            )
        )
    else:
        click.echo(f"--- {before.name}\n+++ {after.name}")
        for line in _plugin_lines(plugins_old, plugins_new):
            click.echo(line)
        for item in diffs:
            if item.status == "unchanged" and not (show_all or hosts):
                continue
            for line in _format_host(item):
                click.echo(line)
        unchanged = len(diffs) - len(changed)
        click.echo(f"{len(changed)} hosts change, {unchanged} unchanged.")
    if exit_code and (changed or plugins_old != plugins_new):
        sys.exit(EXIT_FAILED)


def _plugin_changes(
    old: dict[str, str], new: dict[str, str]
) -> dict[str, dict[str, Optional[str]]]:
    return {
        name: {"old": old.get(name), "new": new.get(name)}
        for name in sorted(set(old) | set(new))
        if old.get(name) != new.get(name)
    }


def _plugin_lines(old: dict[str, str], new: dict[str, str]) -> list[str]:
    lines = []
    for name, change in _plugin_changes(old, new).items():
        lines.append(
            f"plugin {name}: {change['old'] or '(none)'} -> {change['new'] or '(none)'}"
        )
    return lines


@click.command("keygen")
@click.option(
    "--out",
    "-o",
    "private_path",
    default=DEFAULT_KEY,
    show_default=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The private key file; the public key goes to the same name with .pub.",
)
@click.option(
    "--public",
    "public_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The public key file (default: the private key's name with .pub).",
)
@click.option("--force", is_flag=True, help="Overwrite existing key files.")
def keygen(private_path: Path, public_path: Optional[Path], force: bool) -> None:
    """Create an ed25519 key pair for signing releases.

    The private key (mode 0600) stays with CI and signs releases (tenfra compile
    --signing-key); the public key goes to every agent.  Set
    TENFRA_SIGNING_KEY_PASSPHRASE to encrypt the private key.
    """
    from tenfra.release import (
        ENV_KEY_PASSPHRASE,
        generate_private_key,
        key_id,
        private_key_pem,
        public_key_pem,
    )

    if public_path is None:
        public_path = private_path.with_suffix(".pub")
    if public_path == private_path:
        raise UsageError(
            "The public key file must differ from the private key file; use --public."
        )
    for path in (private_path, public_path):
        if path.exists() and not force:
            raise UserError(
                f"{path} already exists; keep it, choose another file with --out, "
                "or pass --force to replace it (releases signed with the old key "
                "will no longer verify)."
            )
    key = generate_private_key()
    passphrase = os.environ.get(ENV_KEY_PASSPHRASE)
    _write_private(
        private_path, private_key_pem(key, passphrase.encode() if passphrase else None)
    )
    _write_file(public_path, public_key_pem(key), 0o644)
    click.echo(
        f"Key {key_id(key)}: private key {private_path} (keep it secret, give it to "
        f"CI), public key {public_path} (install it on every agent)."
    )


def _write_private(path: Path, data: bytes) -> None:
    _write_file(path, data, 0o600)


def _write_file(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` atomically with ``mode`` from the start."""
    import tempfile

    folder = path.parent if str(path.parent) else Path(".")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(prefix=".tmp-", dir=folder)
        try:
            os.fchmod(fd, mode)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, path)
        except BaseException:
            if os.path.exists(temporary):
                os.unlink(temporary)
            raise
    except OSError as exc:
        raise UserError(
            f"Cannot write {path}: {exc.strerror}; choose a writable folder with --out."
        ) from None
