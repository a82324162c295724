"""``tenfra agent``: enrol, run (daemon or once), status, and build the zipapp."""

from __future__ import annotations

import json
import logging
import socket
import sys
from pathlib import Path
from typing import Any, Optional

import click

from tenfra.errors import (
    EXIT_FAILED,
    EXIT_UNAVAILABLE,
    EXIT_VERIFY,
    UsageError,
)

logger = logging.getLogger(__name__)


def _state(ctx: click.Context) -> Any:
    from tenfra.agent.state import StateDir

    state: StateDir = ctx.obj["state"]
    return state


@click.group()
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="TENFRA_STATE_DIR",
    default="/var/lib/tenfra",
    show_default=True,
    help="The agent's state directory (also TENFRA_STATE_DIR).",
)
@click.pass_context
def agent(ctx: click.Context, state_dir: Path) -> None:
    """Run the agent on a managed host: pull, verify, apply and report.

    \b
    First enrol once:
      tenfra agent enroll --provider https://cfg.example:8080 \\
          --token TOKEN --public-key release.pub
    then run it as a service (see tenfra-agent.service) or once:
      tenfra agent run --once
    """
    from tenfra.agent.state import StateDir

    ctx.ensure_object(dict)
    ctx.obj["state"] = StateDir(state_dir)


@agent.command()
@click.option("--provider", "provider_url", required=True, help="Provider base URL.")
@click.option("--host", help="This host's name (default: the machine's host name).")
@click.option("--token", help="The one-time bootstrap token from the provider.")
@click.option(
    "--token-file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Read the bootstrap token from this file instead.",
)
@click.option(
    "--public-key",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    required=True,
    help="The release signing public key ('.pub' from 'tenfra keygen').",
)
@click.option("--interval", type=float, default=300.0, show_default=True)
@click.option("--splay", type=float, default=60.0, show_default=True)
@click.option(
    "--repair-interval",
    type=float,
    default=1800.0,
    show_default=True,
    help="Re-apply the current release after this many seconds.",
)
@click.option("--ca-file", type=click.Path(dir_okay=False, exists=True))
@click.option(
    "--wait",
    type=float,
    default=0.0,
    help="In approval mode, wait up to this many seconds for approval.",
)
@click.pass_context
def enroll(
    ctx: click.Context,
    *,
    provider_url: str,
    host: Optional[str],
    token: Optional[str],
    token_file: Optional[Path],
    public_key: Path,
    interval: float,
    splay: float,
    repair_interval: float,
    ca_file: Optional[str],
    wait: float,
) -> None:
    """Exchange a bootstrap token for this host's credential and save the config."""
    import time

    from tenfra.agent.client import ProviderClient
    from tenfra.agent.state import AgentConfig, RunLock

    state = _state(ctx)
    if token_file is not None:
        token = token_file.read_text(encoding="utf-8").strip()
    key = public_key.read_bytes()
    if b"PUBLIC KEY" not in key:
        raise UsageError(
            f"{public_key} is not a PEM public key; pass the '.pub' file made by "
            "'tenfra keygen'."
        )
    name = host or _default_host()
    state.ensure()
    with RunLock(state.root / "lock"):
        client = ProviderClient(provider_url, ca_file=ca_file)
        request = None if token else state.enroll_request()
        deadline = time.monotonic() + wait
        credential, shown = client.enroll(name, token, request=request)
        while credential is None and time.monotonic() < deadline:
            time.sleep(min(2.0, max(deadline - time.monotonic(), 0.1)))
            credential, shown = client.enroll(name, token, request=request)
        if credential is None:
            click.echo(
                f"Enrolment of {name!r} awaits approval on the provider (request "
                f"fingerprint {shown}); approve it in the admin UI or with "
                f"'tenfra provider approve {name}', then run this command "
                "again."
            )
            sys.exit(EXIT_UNAVAILABLE)
        state.save_public_key(key)
        state.save_credential(credential)
        (state.root / "enroll-request").unlink(missing_ok=True)
        state.save_config(
            AgentConfig(
                provider=provider_url,
                host=name,
                interval=interval,
                splay=splay,
                repair_interval=repair_interval,
                ca_file=ca_file,
            )
        )
    click.echo(f"Enrolled {name!r} with {provider_url}; state in {state.root}.")


def _default_host() -> str:
    from tenfra.pluginmanager import get_plugin_manager

    default = socket.getfqdn() or socket.gethostname()
    chosen = get_plugin_manager().hook.tenfra_agent_hostname(default=default)
    return str(chosen or default)


@agent.command()
@click.option("--once", is_flag=True, help="Run one cycle and exit.")
@click.option(
    "--force",
    is_flag=True,
    help="Apply the current release even if nothing changed (with --once).",
)
@click.pass_context
def run(ctx: click.Context, once: bool, force: bool) -> None:
    """Poll the provider, verify and apply new releases, and report.

    Without --once the agent runs until SIGTERM: it polls every interval plus
    a random splay, backs off when the provider is unreachable, and applies
    the current release again every repair interval.  With --once the exit
    code says what happened: 0 applied or nothing to do, 1 a recipe failed
    or a report was lost (its spool could not be written and the provider was
    unreachable), 4 the release was rejected, 5 the provider was unreachable
    and no release was applied.
    """
    from tenfra.agent.apply import Agent
    from tenfra.agent.loop import Stopper

    _daemon_logging(ctx, once)
    state = _state(ctx)
    state.ensure()
    config = state.load_config()
    stopper = Stopper()
    stopper.install()
    try:
        runner = Agent(state, config, stopper=stopper)
        if once:
            outcome = runner.cycle(force=force, wait_lock=0.0)
            click.echo(outcome.summary())
            if outcome.rejected:
                sys.exit(EXIT_VERIFY)
            if outcome.failed or outcome.lost:
                sys.exit(EXIT_FAILED)
            if not outcome.reached and not outcome.applied:
                sys.exit(EXIT_UNAVAILABLE)
            return
        runner.serve()
    finally:
        stopper.uninstall()


def _daemon_logging(ctx: click.Context, once: bool) -> None:
    root = ctx.find_root()
    if once or root.params.get("quiet") or root.params.get("verbose"):
        return
    logging.getLogger("tenfra").setLevel(logging.INFO)


@agent.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Show the current and last good release, the last run and what is pending."""
    from tenfra.agent.apply import status_of

    info = status_of(_state(ctx))
    if as_json:
        click.echo(json.dumps(info, indent=2, sort_keys=True))
        return
    last = info.get("lastRun") or {}
    rows = [
        ("host", info.get("host") or "-"),
        ("provider", info.get("provider") or "-"),
        ("current release", info.get("current") or "-"),
        ("last good release", info.get("lastGood") or "-"),
        (
            "last run",
            f"{last.get('status', '-')} at {last.get('finished', '-')}"
            + (f" ({last.get('release')})" if last.get("release") else "")
            if last
            else "-",
        ),
        ("pending reports", str(info.get("pendingReports", 0))),
        (
            "pending handlers",
            ", ".join(info.get("pendingHandlers", [])) or "none",
        ),
    ]
    if last.get("error"):
        rows.append(("last error", str(last["error"])))
    rejected = info.get("rejected")
    if isinstance(rejected, dict):
        rows.append(("last rejection", str(rejected.get("error"))))
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        click.echo(f"{label:<{width}}  {value}")


@agent.command()
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("tenfra.pyz"),
    show_default=True,
    help="Where to write the zipapp.",
)
def bundle(output: Path) -> None:
    """Build the single-file agent (a zipapp for any python3 >= 3.9)."""
    from tenfra.agent.zipapp import build_zipapp

    path = build_zipapp(output)
    click.echo(f"Wrote {path} ({path.stat().st_size // 1024} KiB).")
