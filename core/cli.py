"""The ``tenfra`` command line: the group, error handling and logging set-up.

Subcommands live in the modules that own their feature and are imported only
when used, so ``tenfra run`` does not pay for the provider's imports.  Plugins
add commands through ``tenfra_add_cli_commands``.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys
import traceback
from typing import Any, Optional

import click

from tenfra import __version__
from tenfra.errors import EXIT_INTERNAL, EXIT_USER, TenfraError, UserError

# name -> "module:attribute" of a click command, imported on first use.
BUILTIN_COMMANDS = {
    "run": "tenfra.commands.run:run",
    "check": "tenfra.commands.run:check",
    "test": "tenfra.commands.test:test",
    "compile": "tenfra.commands.compile:compile_",
    "diff": "tenfra.commands.compile:diff",
    "keygen": "tenfra.commands.compile:keygen",
    "inventory": "tenfra.commands.inventory:inventory",
    "schema": "tenfra.commands.schema:schema",
    "plugins": "tenfra.cli:plugins",
    "provider": "tenfra.provider.cli:provider",
    "agent": "tenfra.agent.cli:agent",
}

SHORT_HELP = {
    "run": "Run a recipe on this machine.",
    "check": "Validate recipes, test suites and inventories.",
    "test": "Run test suites on disposable machines.",
    "compile": "Compile recipes and inventory into a signed release.",
    "diff": "Show what changes between two releases.",
    "keygen": "Create an ed25519 key pair for signing releases.",
    "inventory": "List hosts, show their vars and explain where a var comes from.",
    "schema": "Describe resource types and their options.",
    "plugins": "List loaded plugins with versions and hooks.",
    "provider": "Run and administer the provider.",
    "agent": "Run the agent on a managed host.",
}

logger = logging.getLogger("tenfra")


class LazyGroup(click.Group):
    """A click group whose built-in and plugin commands are imported on demand."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        names = set(BUILTIN_COMMANDS) | set(super().list_commands(ctx))
        names |= set(_plugin_commands())
        return sorted(names)

    def get_command(self, ctx: click.Context, cmd_name: str) -> Optional[click.Command]:
        target = BUILTIN_COMMANDS.get(cmd_name)
        if target is not None:
            module_name, attribute = target.split(":")
            try:
                module = importlib.import_module(module_name)
            except ImportError as exc:
                if exc.name and not exc.name.startswith("tenfra"):
                    raise UserError(
                        f"'tenfra {cmd_name}' needs the Python package {exc.name!r}, "
                        "which is not installed; install the matching extra, for "
                        f"example: pip install 'tenfra[{_extra_for(cmd_name)}]'."
                    ) from exc
                raise
            command: click.Command = getattr(module, attribute)
            return command
        plugin_command = _plugin_commands().get(cmd_name)
        if plugin_command is not None:
            return plugin_command
        return super().get_command(ctx, cmd_name)

    def format_commands(
        self, ctx: click.Context, formatter: click.HelpFormatter
    ) -> None:
        rows = []
        for name in self.list_commands(ctx):
            if name in SHORT_HELP:
                rows.append((name, SHORT_HELP[name]))
            else:
                command = self.get_command(ctx, name)
                if command is not None and not command.hidden:
                    rows.append((name, command.get_short_help_str(60)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def _extra_for(command: str) -> str:
    return {"provider": "provider", "test": "docker"}.get(command, "provider")


def _plugin_commands() -> dict[str, click.Command]:
    from tenfra.pluginmanager import get_plugin_manager

    registry = get_plugin_manager().cli_commands
    return {name: registry[name] for name in registry}


def configure_logging(verbosity: int, quiet: bool) -> None:
    """Send tenfra's log records to standard error (entry points only)."""
    level = logging.WARNING
    if verbosity == 1:
        level = logging.INFO
    elif verbosity >= 2:
        level = logging.DEBUG
    if quiet:
        level = logging.ERROR
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("tenfra")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def _version_message() -> str:
    from tenfra.pluginmanager import get_plugin_manager

    lines = [f"tenfra {__version__} (Python {sys.version.split()[0]})", "plugins:"]
    for row in get_plugin_manager().describe():
        lines.append(f"  {row['name']} {row['version']} ({row['origin']})")
    return "\n".join(lines)


def _print_version(ctx: click.Context, _param: Any, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    click.echo(_version_message())
    ctx.exit(0)


@click.group(
    cls=LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_version,
    help="Show the version and the loaded plugins, then exit.",
)
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors on standard error.")
def cli(verbose: int, quiet: bool) -> None:
    """tenfra: describe machines in YAML recipes, test them, compile them into a
    signed release, and let agents pull and apply it.

    \b
    Exit codes:
      0  success
      1  a run, test or check found failures
      2  bad input or command-line usage
      3  a plugin could not be loaded
      4  a release failed verification
      5  storage or the provider could not be reached
      70 internal error (a bug; please report it)

    Environment: TENFRA_DISABLE_PLUGINS=name,... skips plugins;
    TENFRA_TRACE_HOOKS=1 traces hook calls to standard error.
    """
    configure_logging(verbose, quiet)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def plugins(as_json: bool) -> None:
    """List every loaded plugin: name, version, origin and the hooks it implements."""
    from tenfra.pluginmanager import get_plugin_manager

    rows = get_plugin_manager().describe()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    width = max((len(row["name"]) for row in rows), default=4)
    for row in rows:
        hooks = ", ".join(h.removeprefix("tenfra_") for h in row["hooks"]) or "-"
        click.echo(
            f"{row['name']:<{width}}  {row['version']:<10} {row['origin']:<8} {hooks}"
        )


def error_line(exc: BaseException) -> str:
    return f"tenfra: error: {exc}"


def main(argv: Optional[list[str]] = None) -> None:
    """Console entry point: run the CLI and map errors to exit codes."""
    try:
        cli.main(args=argv, prog_name="tenfra", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(EXIT_USER if exc.exit_code == 2 else exc.exit_code)
    except TenfraError as exc:
        click.secho(error_line(exc), err=True, fg="red")
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(0)
    except Exception:
        traceback.print_exc()
        click.secho(
            "tenfra: internal error (a bug in tenfra or a plugin); "
            "please report it with the traceback above.",
            err=True,
            fg="red",
        )
        sys.exit(EXIT_INTERNAL)
    sys.exit(0)


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
