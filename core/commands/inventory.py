"""``tenfra inventory``: list hosts, show their vars, explain where a var comes from."""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Any, Callable, Optional, TypeVar

import click

from tenfra.errors import EXIT_FAILED

logger = logging.getLogger(__name__)

ENV_INVENTORY = "TENFRA_INVENTORY"

F = TypeVar("F", bound=Callable[..., Any])


def inventory_option(function: F) -> F:
    """The ``-i/--inventory`` option shared by the subcommands."""
    return click.option(
        "-i",
        "--inventory",
        "inventory_path",
        default=lambda: os.environ.get(ENV_INVENTORY, "inventory.yaml"),
        show_default=f"${ENV_INVENTORY} or inventory.yaml",
        type=click.Path(dir_okay=True, path_type=str),
        help="The inventory file (or a folder holding inventory.yaml).",
    )(function)


def _load(path: str) -> Any:
    from tenfra.inventory import load_inventory

    return load_inventory(path)


def _show(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


@click.group()
def inventory() -> None:
    """List hosts, show their vars and explain where a var comes from.

    \b
    Examples:
      tenfra inventory list 'web-[01:02],db'
      tenfra inventory host web-01
      tenfra inventory explain web-01 nginx_workers
    """


@inventory.command("list")
@click.argument("pattern", required=False)
@inventory_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def list_(pattern: Optional[str], inventory_path: str, as_json: bool) -> None:
    """List the hosts matching PATTERN (every host without one), with their groups."""
    inv = _load(inventory_path)
    hosts = inv.match(pattern) if pattern else inv.hosts
    if as_json:
        rows = [{"name": host, "groups": inv.groups_of(host)} for host in hosts]
        click.echo(json.dumps({"pattern": pattern, "hosts": rows}, indent=2))
    else:
        width = max((len(host) for host in hosts), default=4)
        for host in hosts:
            groups = ", ".join(inv.groups_of(host)) or "(ungrouped)"
            click.echo(f"{host:<{width}}  {groups}")
    if not hosts:
        click.echo(
            f"No host of {inv.source} matches {pattern!r}; list every host with "
            "'tenfra inventory list' and check the pattern.",
            err=True,
        )
        sys.exit(EXIT_FAILED)
    if not as_json and pattern:
        click.echo(f"{len(hosts)} of {len(inv)} hosts match {pattern!r}.", err=True)


@inventory.command()
@inventory_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def groups(inventory_path: str, as_json: bool) -> None:
    """List the groups in precedence order (lowest first) with their hosts."""
    inv = _load(inventory_path)
    rows = [
        {
            "name": group.name,
            "depth": group.depth,
            "hosts": inv.match(group.name),
        }
        for group in inv.ordered_groups()
    ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    width = max((len(row["name"]) for row in rows), default=5)
    for row in rows:
        indent = "  " * row["depth"]
        name = f"{indent}{row['name']}"
        click.echo(f"{name:<{width + 2 * row['depth']}}  {', '.join(row['hosts'])}")


@inventory.command()
@click.argument("name")
@inventory_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def host(name: str, inventory_path: str, as_json: bool) -> None:
    """Show host NAME: its groups and every var with the layer it comes from."""
    inv = _load(inventory_path)
    layers = inv.var_layers(name)
    final: dict[str, tuple[Any, str]] = {}
    for label, values in layers:
        for key, value in values.items():
            final[key] = (value, label)
    if as_json:
        document = {
            "host": name,
            "groups": inv.groups_of(name),
            "vars": {
                key: {"value": value, "layer": label}
                for key, (value, label) in sorted(final.items())
            },
            "layers": [{"name": label, "vars": values} for label, values in layers],
        }
        click.echo(json.dumps(document, indent=2, default=str))
        return
    click.echo(f"host: {name}")
    click.echo(f"groups: {', '.join(inv.groups_of(name, special=True))}")
    if not final:
        click.echo("vars: (none)")
        return
    click.echo("vars:")
    shown = {key: _show(value) for key, (value, _label) in final.items()}
    width = max(len(key) for key in final)
    value_width = min(max(len(text) for text in shown.values()), 40)
    for key in sorted(final):
        text = shown[key]
        label = final[key][1]
        click.echo(f"  {key:<{width}}  {text:<{value_width}}  <- {label}")


@inventory.command()
@click.argument("host_name", metavar="HOST")
@click.argument("var", metavar="VAR")
@inventory_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def explain(host_name: str, var: str, inventory_path: str, as_json: bool) -> None:
    """Show every layer that sets VAR for HOST, lowest first; the last one wins."""
    inv = _load(inventory_path)
    layers = _explain(inv, host_name, var)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "host": host_name,
                    "var": var,
                    "layers": [{"layer": n, "value": v} for n, v in layers],
                    "value": layers[-1][1] if layers else None,
                    "defined": bool(layers),
                },
                indent=2,
                default=str,
            )
        )
    if not layers:
        click.echo(
            f"{var!r} is not set for host {host_name!r} by any inventory layer; "
            f"see every var of the host with 'tenfra inventory host {host_name}'.",
            err=True,
        )
        sys.exit(EXIT_FAILED)
    if as_json:
        return
    click.echo(f"{var} for {host_name} (lowest precedence first, * wins):")
    for position, (label, value) in enumerate(layers):
        mark = "*" if position == len(layers) - 1 else " "
        click.echo(f"  {mark} {label}: {_show(value)}")


def _explain(inv: Any, host_name: str, var: str) -> list[tuple[str, Any]]:
    """(layer, value) pairs from :func:`tenfra.variables.explain`, lowest first."""
    from tenfra.variables import explain as explain_var

    result = explain_var(host_name, var, inventory=inv)
    return [(str(name), value) for name, value in result.layers]
