"""YAML loading with YAML 1.2 semantics and source positions for error messages.

Documents are loaded with ruamel.yaml's round-trip loader, which keeps the
0-based line and column of every mapping key, mapping value and sequence item
on the containing node.  :func:`locate` turns a path of keys and indices into
a 1-based :class:`~tenfra.errors.Location`, so a validation error found deep
inside a structure can still say ``file:line:col``.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Optional, Sequence, Union

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from tenfra.errors import Location, YamlError

PathItem = Union[str, int]


def _loader() -> YAML:
    yaml = YAML(typ="rt")
    yaml.version = (1, 2)  # type: ignore[assignment]
    yaml.allow_duplicate_keys = False
    return yaml


def load_yaml(text: str, source: str) -> Any:
    """Parse one YAML document; ``source`` names the file in error messages.

    Raises :class:`YamlError` with ``source:line:col`` for syntax errors,
    duplicate keys and tab indentation.
    """
    try:
        data = _loader().load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        location = (
            Location(source, mark.line + 1, mark.column + 1)
            if mark
            else Location(source)
        )
        raise YamlError(_describe_yaml_error(exc, text, mark), location) from None
    except YAMLError as exc:
        raise YamlError(f"not valid YAML: {exc}", Location(source)) from None
    return data


def load_yaml_file(path: Union[str, Path], display: Optional[str] = None) -> Any:
    """Read and parse a YAML file; errors name ``display`` (default: the path)."""
    source = display if display is not None else str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise YamlError("file not found; check the path", Location(source)) from None
    except UnicodeDecodeError as exc:
        raise YamlError(
            f"not UTF-8 text (byte {exc.start}); save the file as UTF-8",
            Location(source),
        ) from None
    except OSError as exc:
        raise YamlError(
            f"cannot read the file: {exc.strerror}", Location(source)
        ) from None
    return load_yaml(text, source)


def _describe_yaml_error(exc: MarkedYAMLError, text: str, mark: Any) -> str:
    problem = (exc.problem or exc.context or "not valid YAML").strip()
    if "found character '\\t'" in problem or (
        mark is not None and _line(text, mark.line).startswith("\t")
    ):
        return "a tab character is used for indentation; YAML allows only spaces"
    if "found duplicate key" in problem or "duplicate key" in problem:
        key = problem.split('"')[1] if '"' in problem else ""
        return (
            f"duplicate key {key!r} in the same mapping; keep one of them"
            if key
            else "duplicate key in the same mapping; keep one of them"
        )
    return f"not valid YAML: {problem}"


def _line(text: str, index: int) -> str:
    lines = text.splitlines()
    return lines[index] if 0 <= index < len(lines) else ""


def locate(root: Any, path: Sequence[PathItem], source: str) -> Location:
    """The position of the value at ``path`` inside ``root``.

    The deepest node of the path that ruamel knows a position for is used, so
    a path into a generated or templated value still points at its origin.
    """
    node = root
    best: Optional[tuple[int, int]] = None
    if isinstance(node, (CommentedMap, CommentedSeq)) and node.lc.line is not None:
        best = (node.lc.line, node.lc.col)
    for item in path:
        position: Optional[tuple[int, int]] = None
        child: Any = None
        if isinstance(node, CommentedMap) and item in node:
            try:
                position = node.lc.value(item)
            except (KeyError, TypeError):
                position = None
            if position is None or position[0] is None:
                position = node.lc.key(item)
            child = node[item]
        elif (
            isinstance(node, CommentedSeq)
            and isinstance(item, int)
            and item < len(node)
        ):
            try:
                position = node.lc.item(item)
            except (KeyError, TypeError, IndexError):
                position = None
            child = node[item]
        else:
            break
        if position is not None and position[0] is not None:
            best = (position[0], position[1])
        node = child
    if best is None:
        return Location(source)
    return Location(source, best[0] + 1, best[1] + 1)


def locate_key(root: Any, path: Sequence[PathItem], key: str, source: str) -> Location:
    """The position of ``key`` itself in the mapping found at ``path``."""
    node = root
    for item in path:
        try:
            node = node[item]
        except (KeyError, IndexError, TypeError):
            return locate(root, path, source)
    if isinstance(node, CommentedMap) and key in node:
        line, col = node.lc.key(key)
        return Location(source, line + 1, col + 1)
    return locate(root, path, source)


def to_plain(value: Any) -> Any:
    """A copy of ``value`` with ruamel's container and scalar types made plain.

    An explicit octal integer (``0o644``) stays a ``ruamel`` ``OctalInt`` (an
    ``int``): file modes accept it, and only it, as a number.
    """
    if isinstance(value, dict):
        return {
            str(k) if not isinstance(k, (int, float, bool)) else k: to_plain(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [to_plain(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return value if is_octal_int(value) else int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    return value


def is_octal_int(value: Any) -> bool:
    """True for an integer written in YAML as explicit octal (``0o644``)."""
    return type(value).__name__ == "OctalInt"


def dump_yaml(value: Any) -> str:
    """Serialise plain data as block-style YAML 1.2 (used by ``write`` and docs)."""
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.sort_base_mapping_type_on_output = False  # type: ignore[assignment]
    from ruamel.yaml.scalarint import OctalInt

    yaml.representer.add_representer(
        OctalInt, lambda rep, data: rep.represent_int(int(data))
    )
    stream = io.StringIO()
    yaml.dump(to_plain(value), stream)
    return stream.getvalue()
