"""``tenfra schema``: resource types and their options, from the option classes."""

from __future__ import annotations

import inspect
import json
import logging
import textwrap
import typing
from pathlib import Path
from typing import Any, Optional, Union

import attrs
import click

from tenfra.convert import yaml_key
from tenfra.errors import UsageError

logger = logging.getLogger(__name__)


# -- describing option classes --------------------------------------------------------


def type_text(tp: Any) -> str:
    """A reader's name for an option type: ``string``, ``list of string``..."""
    names = {
        str: "string",
        int: "integer",
        float: "number",
        bool: "boolean",
        typing.Any: "any",
        type(None): "null",
    }
    if tp in names:
        return names[tp]
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is Union:
        members = [a for a in args if a is not type(None)]
        return " or ".join(type_text(a) for a in members)
    if origin in (list, tuple, set, frozenset):
        return f"list of {type_text(args[0])}" if args else "list"
    if origin is dict:
        return f"mapping of {type_text(args[1])}" if len(args) == 2 else "mapping"
    if attrs.has(tp):
        return f"mapping ({tp.__name__})"
    if isinstance(tp, type) and tp.__name__ == "Mode":
        return "file mode"
    return getattr(tp, "__name__", str(tp))


def _choices(validator: Any) -> Optional[list[Any]]:
    if validator is None:
        return None
    options = getattr(validator, "options", None)
    if options is not None:
        return list(options)
    inner = getattr(validator, "validator", None)  # attrs.validators.optional
    if inner is not None:
        return _choices(inner)
    for sub in getattr(validator, "_validators", ()) or ():  # and_()
        found = _choices(sub)
        if found is not None:
            return found
    return None


def _default(field: attrs.Attribute[Any]) -> tuple[bool, Any]:
    """(required, default as plain data)."""
    default: Any = field.default
    if default is attrs.NOTHING:
        return True, None
    if isinstance(default, attrs.Factory):  # type: ignore[arg-type,unused-ignore]
        factory: Any = default.factory
        value = factory() if not default.takes_self else None
    else:
        value = default
    if value is not None and not isinstance(value, (str, int, float, bool, list, dict)):
        value = str(value)
    return False, value


def describe_options(cls: Any) -> list[dict[str, Any]]:
    """One mapping per option: name, type, required, default, description...

    Options that are not an attrs class (such as a free mapping) have no
    named options: an empty list.
    """
    if not attrs.has(cls):
        return []
    attrs.resolve_types(cls)
    rows = []
    for field in attrs.fields(cls):
        required, default = _default(field)
        row: dict[str, Any] = {
            "name": yaml_key(field),
            "type": type_text(field.type),
            "required": required,
            "default": default,
            "description": " ".join(str(field.metadata.get("description", "")).split()),
        }
        choices = _choices(field.validator)
        if choices is not None:
            row["choices"] = choices
        nested = _nested(field.type)
        if nested is not None:
            row["fields"] = describe_options(nested)
        rows.append(row)
    return rows


def _nested(tp: Any) -> Any:
    if attrs.has(tp):
        return tp
    for arg in typing.get_args(tp):
        found = _nested(arg)
        if found is not None:
            return found
    return None


def split_docstring(cls: Any) -> tuple[str, str, str]:
    """(summary, description, example) of a resource type's docstring."""
    doc = inspect.getdoc(cls) or ""
    example = ""
    if "Example::" in doc:
        doc, _, example = doc.partition("Example::")
        example = textwrap.dedent(example).strip("\n")
    paragraphs = doc.strip().split("\n\n")
    summary = " ".join(paragraphs[0].split()) if paragraphs and paragraphs[0] else ""
    description = "\n\n".join(" ".join(p.split()) for p in paragraphs[1:] if p.strip())
    return summary, description, example


def describe_type(name: str, cls: Any, plugin: Optional[str] = None) -> dict[str, Any]:
    """Everything ``tenfra schema`` knows about one resource type."""
    summary, description, example = split_docstring(cls)
    return {
        "name": name,
        "plugin": plugin,
        "summary": summary,
        "description": description,
        "example": example,
        "freeForm": getattr(cls, "free_form", None),
        "checkMode": bool(getattr(cls, "check_mode", True)),
        "trustedOnly": bool(getattr(cls, "trusted_only", False)),
        "optionsType": type_text(cls.Options),
        "options": describe_options(cls.Options),
    }


def all_types() -> list[dict[str, Any]]:
    """Descriptions of every registered resource type, sorted by name."""
    from tenfra.pluginmanager import get_plugin_manager

    registry = get_plugin_manager().resource_types
    return [
        describe_type(name, cls, registry.owner_of(name))
        for name, cls in registry.items()
    ]


# -- rendering ------------------------------------------------------------------------


def _default_text(row: dict[str, Any]) -> str:
    if row["required"]:
        return "required"
    value = row["default"]
    if value is None:
        return "unset"
    return json.dumps(value)


def render_text(info: dict[str, Any]) -> str:
    """The terminal view of one type."""
    lines = [f"{info['name']}: {info['summary']}"]
    if info["description"]:
        lines += ["", textwrap.fill(info["description"], 88)]
    if info["options"]:
        lines += ["", "Options:"]
        lines += _option_lines(info["options"], "  ")
    else:
        lines += ["", f"Options: {info['optionsType']}"]
    if info["freeForm"]:
        lines += ["", f"A plain string sets '{info['freeForm']}'."]
    if info["example"]:
        lines += ["", "Example:", textwrap.indent(info["example"], "  ")]
    return "\n".join(lines)


def _option_lines(rows: list[dict[str, Any]], indent: str) -> list[str]:
    lines = []
    for row in rows:
        head = f"{indent}{row['name']} ({row['type']}, {_default_text(row)})"
        if "choices" in row:
            head += f" one of: {', '.join(map(str, row['choices']))}"
        lines.append(head)
        lines += textwrap.wrap(
            row["description"],
            88,
            initial_indent=indent + "    ",
            subsequent_indent=indent + "    ",
        )
        if "fields" in row:
            lines += _option_lines(row["fields"], indent + "    ")
    return lines


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _md_rows(rows: list[dict[str, Any]], prefix: str = "") -> list[str]:
    lines = []
    for row in rows:
        default = _default_text(row)
        if "choices" in row:
            default += "; one of " + ", ".join(f"`{c}`" for c in row["choices"])
        lines.append(
            f"| `{prefix}{row['name']}` | {_md_cell(row['type'])} | "
            f"{_md_cell(default)} | {_md_cell(row['description'])} |"
        )
        if "fields" in row:
            lines += _md_rows(row["fields"], f"{prefix}{row['name']}[].")
    return lines


def render_markdown(types: list[dict[str, Any]]) -> str:
    """The Markdown reference page of all resource types (docs are generated)."""
    out = [
        "# Resource types",
        "",
        "Generated by `tenfra schema --markdown` from the option classes; do not "
        "edit by hand.",
        "",
    ]
    out += [f"- [`{t['name']}`](#{t['name']}): {t['summary']}" for t in types]
    for info in types:
        out += ["", f"## {info['name']}", "", info["summary"]]
        if info["description"]:
            out += ["", info["description"]]
        notes = []
        if info["plugin"]:
            notes.append(f"plugin `{info['plugin']}`")
        if info["freeForm"]:
            notes.append(f"a plain string sets `{info['freeForm']}`")
        if not info["checkMode"]:
            notes.append("check mode reports `unknown`")
        if info["trustedOnly"]:
            notes.append("trusted recipes only")
        if notes:
            out += ["", "*" + "; ".join(notes) + ".*"]
        if info["options"]:
            out += [
                "",
                "| option | type | default | description |",
                "| --- | --- | --- | --- |",
                *_md_rows(info["options"]),
            ]
        else:
            out += ["", f"Options: {info['optionsType']}."]
        if info["example"]:
            out += ["", "```yaml", info["example"], "```"]
    return "\n".join(out) + "\n"


# -- the command ----------------------------------------------------------------------


@click.command()
@click.argument("type_name", required=False, metavar="[TYPE]")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option(
    "--markdown", is_flag=True, help="Print the Markdown reference of every type."
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to this file (atomically) instead of standard output.",
)
def schema(
    type_name: Optional[str], as_json: bool, markdown: bool, output: Optional[Path]
) -> None:
    """Describe resource types: every option with its type, default and meaning.

    Without TYPE, list every type with its summary.
    """
    if as_json and markdown:
        raise UsageError("Choose one of --json and --markdown.")
    types = all_types()
    if type_name is not None:
        found = [t for t in types if t["name"] == type_name]
        if not found:
            import difflib

            close = difflib.get_close_matches(type_name, [t["name"] for t in types], 1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise UsageError(
                f"There is no resource type {type_name!r}.{hint} Run 'tenfra schema' "
                "to list them."
            )
        types = found
    if markdown:
        text = render_markdown(types)
    elif as_json:
        text = json.dumps(types[0] if type_name else types, indent=2) + "\n"
    elif type_name:
        text = render_text(types[0]) + "\n"
    else:
        width = max((len(t["name"]) for t in types), default=4)
        text = "".join(f"{t['name']:<{width}}  {t['summary']}\n" for t in types)
    if output is None:
        click.echo(text, nl=False)
        return
    from tenfra.fileops import atomic_write

    atomic_write(output, text.encode("utf-8"))
