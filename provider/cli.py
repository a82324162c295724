"""``tenfra provider``: serve, migrate, token, hash-password, approve, prune, scan."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, Optional

import click

from tenfra.errors import UsageError

logger = logging.getLogger(__name__)

config_option = click.option(
    "--config",
    "config_path",
    envvar="TENFRA_PROVIDER_CONFIG",
    type=click.Path(dir_okay=False),
    help="The provider configuration (also TENFRA_PROVIDER_CONFIG).",
)


def _open(config_path: Optional[str], *, check: bool = True) -> Any:
    """Load the configuration and bind the database."""
    from tenfra.provider.config import load_config
    from tenfra.provider.models import check_schema, connect_database, make_database

    config = load_config(config_path)
    connect_database(
        make_database(
            config.database.url,
            busy_timeout=config.database.busy_timeout,
            max_connections=config.database.max_connections,
        )
    )
    if check:
        check_schema()
    return config


def _duration(text: str) -> float:
    from tenfra.convert import StrictTypeError
    from tenfra.provider.config import Duration

    try:
        return float(Duration.parse(int(text) if text.isdigit() else text))
    except StrictTypeError as exc:
        raise UsageError(f"--ttl: {exc}.") from None


@click.group()
def provider() -> None:
    """Run and administer the provider (Flask + gunicorn, peewee database)."""


@provider.command()
@config_option
@click.option(
    "--bind", help="ADDRESS:PORT to listen on (default: server.bind, 127.0.0.1:8080)."
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    help="Worker processes (default 2 x CPUs + 1).",
)
@click.option("--threads", type=click.IntRange(min=1), help="Threads per worker.")
@click.option("--access-log", is_flag=True, help="Log every request to standard error.")
@click.option(
    "--migrate/--no-migrate",
    default=True,
    show_default=True,
    help="Apply database migrations before serving.",
)
def serve(
    *,
    config_path: Optional[str],
    bind: Optional[str],
    workers: Optional[int],
    threads: Optional[int],
    access_log: bool,
    migrate: bool,
) -> None:
    """Serve the agent API, the admin UI and /metrics under gunicorn."""
    from tenfra.provider.config import load_config
    from tenfra.provider.serve import serve as run

    if logging.getLogger("tenfra").level > logging.INFO:
        logging.getLogger("tenfra").setLevel(logging.INFO)
    config = load_config(config_path)
    run(
        config,
        bind=bind,
        workers=workers,
        threads=threads,
        access_log=access_log,
        migrate=migrate,
    )


@provider.command()
@config_option
def migrate(config_path: Optional[str]) -> None:
    """Create or upgrade the database schema (safe to run on a live database)."""
    from tenfra.provider.models import SCHEMA_VERSION
    from tenfra.provider.models import migrate as run

    _open(config_path, check=False)
    steps = run()
    for step in steps:
        click.echo(f"applied migration {step}")
    click.echo(f"The database schema is at version {SCHEMA_VERSION}.")


@provider.command()
@config_option
@click.option("--host", required=True, help="The host name the token is bound to.")
@click.option("--ttl", default=None, help="How long the token is valid (e.g. 1h, 2d).")
@click.option(
    "--url", help="Provider URL for the install command (default: publicUrl)."
)
def token(
    config_path: Optional[str], host: str, ttl: Optional[str], url: Optional[str]
) -> None:
    """Create a one-time bootstrap token that enrols HOST."""
    from tenfra.provider.maintenance import create_token

    config = _open(config_path)
    seconds = _duration(ttl) if ttl else float(config.auth.token_ttl)
    secret, expires = create_token(host, seconds, actor="cli")
    base = url or config.public_url or "https://PROVIDER"
    click.echo(secret)
    until = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(expires))
    click.echo(
        f"# valid until {until}; install the agent with:",
        err=True,
    )
    click.echo(
        f"#   curl -fsSL {base}/bootstrap/install.sh | sudo sh -s -- "
        f"--token {secret} --host {host}",
        err=True,
    )


@provider.command("hash-password")
@click.option(
    "--password-stdin", is_flag=True, help="Read the password from standard input."
)
def hash_password_command(password_stdin: bool) -> None:
    """Print a scrypt hash of a password for auth.users[].passwordHash."""
    from tenfra.provider.auth import hash_password

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    if len(password) < 8:
        raise UsageError(
            "The password is shorter than 8 characters; choose a longer one."
        )
    click.echo(hash_password(password))


@provider.command()
@config_option
@click.argument("host")
def approve(config_path: Optional[str], host: str) -> None:
    """Approve the pending enrolment request of HOST (approval mode)."""
    from tenfra.provider.maintenance import approve_host

    _open(config_path)
    if not approve_host(host, actor="cli"):
        raise UsageError(
            f"Host {host!r} has no pending enrolment request; the agent must ask "
            "first ('tenfra agent enroll' without --token)."
        )
    click.echo(f"Approved {host}; it receives its credential on its next try.")


@provider.command()
@config_option
@click.argument("host")
def forget(config_path: Optional[str], host: str) -> None:
    """Delete HOST with its credential, tokens, facts, status, runs and logs."""
    from tenfra.provider.maintenance import forget_host

    _open(config_path)
    removed = forget_host(host, actor="cli")
    if not removed["host"]:
        raise UsageError(
            f"There is no host {host!r} to delete; check the name on the fleet page."
        )
    click.echo(
        f"Deleted {host}: {removed['runs']} run(s), {removed['logs']} log line(s) "
        f"and {removed['tokens']} token(s) removed."
    )


@provider.command()
@config_option
def prune(config_path: Optional[str]) -> None:
    """Delete run history and logs older than the configured retention."""
    from tenfra.provider.maintenance import prune as run

    config = _open(config_path)
    removed = run(config)
    click.echo(
        ", ".join(f"{count} {what}" for what, count in removed.items()) + " removed."
    )


@provider.command()
@config_option
def scan(config_path: Optional[str]) -> None:
    """Look for new releases in the release storage now."""
    from tenfra.provider import releases

    config = _open(config_path)
    rings = releases.Rings(config)
    added = releases.discover(config, releases.Storage(config), rings)
    releases.assign(rings)
    click.echo(f"New releases: {', '.join(added)}." if added else "No new release.")
