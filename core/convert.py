"""The one strict cattrs converter, and errors that point into the YAML source.

Rules, the same for every structure tenfra reads (recipes, options of resource
types, inventories, test suites, configurations):

* unknown keys are rejected;
* no silent coercion: ``"no"`` is not ``True``, ``3.9`` is not ``3``, a number
  is not a string, a string is not a list;
* attrs field ``snake_case`` is written ``camelCase`` in YAML (``failed_if`` is
  ``failedIf``), unless the field's metadata gives ``key``;
* a validator's own message is kept in the error.

:func:`structure` raises :class:`~tenfra.errors.ValidationError` whose message
starts with ``file:line:col`` of the offending value.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Optional, Sequence, TypeVar, Union

import attrs
import cattrs
from cattrs.errors import (
    ClassValidationError,
    ForbiddenExtraKeysError,
    IterableValidationError,
)
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

try:
    from cattrs.gen import mapping_structure_factory
except ImportError:  # cattrs < 24.1
    from cattrs.gen import (  # type: ignore[attr-defined,no-redef]
        make_mapping_structure_fn as mapping_structure_factory,
    )

from tenfra.errors import ValidationError
from tenfra.yamlio import PathItem, locate, locate_key

T = TypeVar("T")


def yaml_key(field: attrs.Attribute[Any]) -> str:
    """The YAML key of an attrs field: metadata ``key`` or camelCase of the name."""
    key = field.metadata.get("key")
    if key:
        return str(key)
    head, *rest = field.name.rstrip("_").split("_")
    return head + "".join(part.capitalize() for part in rest)


def describe_type(tp: Any) -> str:
    """A short human name of a type, for messages."""
    names = {
        str: "a string",
        int: "an integer",
        float: "a number",
        bool: "true or false",
        list: "a list",
        dict: "a mapping",
    }
    if tp in names:
        return names[tp]
    origin = getattr(tp, "__origin__", None)
    if origin in (list, tuple, set, frozenset, Sequence):
        return "a list"
    if origin is dict:
        return "a mapping"
    if origin is Union:
        return " or ".join(
            describe_type(arg) for arg in tp.__args__ if arg is not type(None)
        )
    if attrs.has(tp):
        return "a mapping"
    return getattr(tp, "__name__", str(tp))


def type_name_of(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if value is None:
        return "empty (null)"
    return type(value).__name__


class StrictTypeError(TypeError):
    """A value of the wrong type; the message is meant for the user."""


def _strict_str(value: Any, _: Any) -> str:
    if isinstance(value, str):
        return str(value)
    hint = ""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        hint = f"; quote it if you mean the text: '{value}'"
    elif isinstance(value, bool):
        hint = "; quote it if you mean the text"
    raise StrictTypeError(f"expected a string, got {type_name_of(value)}{hint}")


def _strict_int(value: Any, _: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return int(value)
    raise StrictTypeError(f"expected an integer, got {type_name_of(value)}")


def _strict_float(value: Any, _: Any) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise StrictTypeError(f"expected a number, got {type_name_of(value)}")


def _strict_bool(value: Any, _: Any) -> bool:
    if isinstance(value, bool):
        return value
    hint = "; write true or false" if isinstance(value, (str, int)) else ""
    raise StrictTypeError(f"expected true or false, got {type_name_of(value)}{hint}")


def _is_list_type(tp: Any) -> bool:
    return getattr(tp, "__origin__", None) in (list, tuple, set, frozenset)


def _is_dict_type(tp: Any) -> bool:
    return getattr(tp, "__origin__", None) is dict or tp is dict


def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)
    conv.register_structure_hook(str, _strict_str)
    conv.register_structure_hook(int, _strict_int)
    conv.register_structure_hook(float, _strict_float)
    conv.register_structure_hook(bool, _strict_bool)
    # A predicate, not register_structure_hook(Any): cattrs 25 (Python 3.9) refuses Any.
    conv.register_structure_hook_func(lambda t: t is Any, lambda v, _: v)

    def dict_hook_factory(tp: Any) -> Callable[[Any, Any], Any]:
        # Not conv.gen_structure_mapping: it registers the raw mapping hook for
        # ``tp`` directly, which would bypass the type check below next time.
        base = (
            None if tp is dict else mapping_structure_factory(tp, conv)  # type: ignore[arg-type]
        )

        def hook(value: Any, t: Any) -> Any:
            if not isinstance(value, dict):
                raise StrictTypeError(f"expected a mapping, got {type_name_of(value)}")
            if base is None:
                return dict(value)
            return base(value, t)

        return hook

    def attrs_hook_factory(cls: Any) -> Callable[[Any, Any], Any]:
        overrides = {
            f.name: override(rename=yaml_key(f))
            for f in attrs.fields(cls)
            if yaml_key(f) != f.name
        }
        base = make_dict_structure_fn(
            cls,
            conv,
            _cattrs_forbid_extra_keys=True,
            **overrides,  # type: ignore[arg-type]
        )

        def hook(value: Any, t: Any) -> Any:
            if not isinstance(value, dict):
                raise StrictTypeError(f"expected a mapping, got {type_name_of(value)}")
            return base(value, t)

        return hook

    def attrs_unstructure_factory(cls: Any) -> Callable[[Any], Any]:
        overrides = {
            f.name: override(rename=yaml_key(f))
            for f in attrs.fields(cls)
            if yaml_key(f) != f.name
        }
        return make_dict_unstructure_fn(cls, conv, **overrides)  # type: ignore[arg-type]

    conv.register_structure_hook_factory(attrs.has, attrs_hook_factory)
    conv.register_unstructure_hook_factory(attrs.has, attrs_unstructure_factory)
    conv.register_structure_hook_factory(_is_dict_type, dict_hook_factory)
    _install_list_check(conv)
    _install_plain_unions(conv)
    return conv


_PLAIN = (str, int, float, bool)


def _union_members(tp: Any) -> list[Any]:
    return [arg for arg in tp.__args__ if arg is not type(None)]


def _is_plain_union(tp: Any) -> bool:
    """A union of scalars, lists and mappings, such as ``Union[str, list[str]]``."""
    if getattr(tp, "__origin__", None) is not Union:
        return False
    members = _union_members(tp)
    return len(members) > 1 and all(
        arg in _PLAIN or _is_list_type(arg) or _is_dict_type(arg) for arg in members
    )


def _install_plain_unions(conv: cattrs.Converter) -> None:
    """Structure unions of plain types by the value's own type, never by coercion."""

    def factory(tp: Any) -> Callable[[Any, Any], Any]:
        members = _union_members(tp)
        optional = type(None) in tp.__args__

        def pick(value: Any) -> Any:
            for arg in members:
                if isinstance(value, bool):
                    if arg is bool:
                        return arg
                elif isinstance(value, int):
                    if arg is int:
                        return arg
                elif isinstance(value, float):
                    if arg is float:
                        return arg
                elif isinstance(value, str):
                    if arg is str:
                        return arg
                elif isinstance(value, (list, tuple)):
                    if _is_list_type(arg):
                        return arg
                elif isinstance(value, dict) and _is_dict_type(arg):
                    return arg
            if isinstance(value, int) and not isinstance(value, bool):
                return float if float in members else None
            return None

        def hook(value: Any, _: Any) -> Any:
            if value is None and optional:
                return None
            arg = pick(value)
            if arg is None:
                raise StrictTypeError(
                    f"expected {describe_type(tp)}, got {type_name_of(value)}"
                )
            return conv.structure(value, arg)

        return hook

    conv.register_structure_hook_factory(_is_plain_union, factory)


def _install_list_check(conv: cattrs.Converter) -> None:
    """Refuse strings and mappings where a list is expected (cattrs iterates them)."""

    def factory(tp: Any) -> Callable[[Any, Any], Any]:
        args = getattr(tp, "__args__", None) or (Any,)
        origin = tp.__origin__
        item_type = args[0]

        def hook(value: Any, _: Any) -> Any:
            if not isinstance(value, (list, tuple)):
                raise StrictTypeError(
                    f"expected a list, got {type_name_of(value)}"
                    + ("; write it as a YAML list" if isinstance(value, str) else "")
                )
            items = []
            errors = []
            for index, item in enumerate(value):
                try:
                    items.append(conv.structure(item, item_type))
                except Exception as exc:
                    notes = [*getattr(exc, "__notes__", []), _IndexNote(index)]
                    setattr(exc, "__notes__", notes)  # noqa: B010
                    errors.append(exc)
            if errors:
                raise IterableValidationError(f"While structuring {tp!r}", errors, tp)
            if origin is tuple:
                return tuple(items)
            if origin in (set, frozenset):
                return origin(items)
            return items

        return hook

    conv.register_structure_hook_factory(_is_list_type, factory)


class _IndexNote(str):
    """A cattrs-style note that carries the failing index."""

    def __new__(cls, index: int) -> _IndexNote:
        note = super().__new__(cls, f"Structuring item @ index {index}")
        note.index = index  # type: ignore[assignment]
        return note


converter = _make_converter()
"""The strict converter shared by every part of tenfra."""


def _path_of_note(note: Any) -> Optional[PathItem]:
    index = getattr(note, "index", None)
    if isinstance(index, int) and not isinstance(index, bool):
        return int(index)
    if isinstance(index, str):  # a mapping key (cattrs' mapping notes)
        return index
    name = getattr(note, "name", None)
    if isinstance(name, str):
        return name
    return None


def collect_errors(
    exc: BaseException, path: tuple[PathItem, ...] = ()
) -> list[tuple[tuple[PathItem, ...], BaseException]]:
    """Flatten a cattrs exception group into (path, leaf error) pairs.

    Paths use the YAML keys (camelCase), so they can be located in the source.
    """
    if isinstance(exc, ForbiddenExtraKeysError):
        return [(path, exc)]
    if isinstance(exc, (ClassValidationError, IterableValidationError)):
        found: list[tuple[tuple[PathItem, ...], BaseException]] = []
        for sub in exc.exceptions:
            step: tuple[PathItem, ...] = ()
            for note in getattr(sub, "__notes__", []):
                item = _path_of_note(note)
                if item is not None:
                    step = (item,)
                    if isinstance(exc, ClassValidationError) and isinstance(item, str):
                        step = (_rename(exc.cl, item),)
            found.extend(collect_errors(sub, path + step))
        return found
    return [(path, exc)]


def _rename(cls: Any, attribute: str) -> str:
    try:
        for field in attrs.fields(cls):
            if field.name == attribute:
                return yaml_key(field)
    except (TypeError, attrs.exceptions.NotAnAttrsClassError):
        pass
    return attribute


def _field_type(cls: Any, path: Sequence[PathItem]) -> Any:
    tp = cls
    for item in path:
        if attrs.has(tp) and isinstance(item, str):
            match = [f for f in attrs.fields(tp) if yaml_key(f) == item]
            if not match:
                return None
            tp = match[0].type
        else:
            args = getattr(tp, "__args__", None)
            if not args:
                return None
            tp = args[-1]
        origin = getattr(tp, "__origin__", None)
        if origin is Union:
            non_none = [a for a in tp.__args__ if a is not type(None)]
            tp = non_none[0] if len(non_none) == 1 else tp
    return tp


def describe_error(
    error: BaseException, path: Sequence[PathItem], cls: Any, what: str
) -> str:
    """One sentence for one leaf error at ``path``."""
    where = _dotted(path)
    if isinstance(error, ForbiddenExtraKeysError):
        keys = sorted(error.extra_fields, key=str)
        target = error.cl if attrs.has(error.cl) else None
        allowed = sorted(yaml_key(f) for f in attrs.fields(target)) if target else []
        known = f"; known keys are: {', '.join(allowed)}" if allowed else ""
        close = _close_matches(str(keys[0]), allowed) if allowed else ""
        subject = f"in {where}" if where else f"in {what}"
        return f"unknown key {keys[0]!r} {subject}{close}{known}"
    if isinstance(error, KeyError):
        return f"{where or what} is required but missing"
    message = str(error).rstrip(".")
    args = error.args
    if len(args) >= 2 and isinstance(args[1], attrs.Attribute):
        # An attrs validator: ValueError(message, attribute, *details).
        where = where or yaml_key(args[1])
        if len(args) == 4 and isinstance(args[2], (tuple, list, set, frozenset, dict)):
            choices = ", ".join(sorted(str(c) for c in args[2]))
            return f"{where}: {args[3]!r} is not one of: {choices}"
        return f"{where}: {str(args[0]).rstrip('.')}"
    if isinstance(error, StrictTypeError):
        return f"{where}: {message}" if where else message
    if isinstance(error, (TypeError, ValueError)):
        tp = _field_type(cls, path)
        expected = f"expected {describe_type(tp)}" if tp is not None else ""
        detail = message if message and "structur" not in message.lower() else expected
        return f"{where}: {detail}" if where else detail
    return f"{where}: {message}" if where else message


def _dotted(path: Sequence[PathItem]) -> str:
    text = ""
    for item in path:
        if isinstance(item, int):
            text += f"[{item}]"
        else:
            text += ("." if text else "") + item
    return text


def _close_matches(word: str, choices: Sequence[str]) -> str:
    import difflib

    close = difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def structure(
    data: Any,
    cls: type[T],
    *,
    source: str,
    root: Any = None,
    base_path: Sequence[PathItem] = (),
    what: str = "this mapping",
) -> T:
    """Structure ``data`` into ``cls`` strictly, or raise a located ValidationError.

    :param data: Plain or ruamel data (the part of the document to convert).
    :param cls: The attrs class (or type) to build.
    :param source: File name used in the message.
    :param root: The whole document ``data`` is part of (for positions);
        defaults to ``data``.
    :param base_path: Where ``data`` sits inside ``root``.
    :param what: How to call ``data`` when the error is about it as a whole.
    """
    try:
        return converter.structure(data, cls)
    except Exception as exc:
        raise located_error(
            exc,
            cls,
            source=source,
            root=root if root is not None else data,
            base_path=base_path,
            what=what,
        ) from None


def located_error(
    exc: BaseException,
    cls: Any,
    *,
    source: str,
    root: Any,
    base_path: Sequence[PathItem] = (),
    what: str = "this mapping",
) -> ValidationError:
    """Turn a structuring failure into a ValidationError at the first leaf."""
    leaves = collect_errors(exc) or [((), exc)]
    path, leaf = leaves[0]
    full = tuple(base_path) + tuple(path)
    if isinstance(leaf, ForbiddenExtraKeysError):
        key = sorted(leaf.extra_fields, key=str)[0]
        location = locate_key(root, full, key, source)
    elif isinstance(leaf, KeyError):
        location = locate(root, full[:-1] if full else full, source)
    else:
        location = locate(root, full, source)
    message = describe_error(leaf, path, cls, what)
    if len(leaves) > 1:
        message += (
            f" (and {len(leaves) - 1} more problem{'s' if len(leaves) > 2 else ''})"
        )
    return ValidationError(message, location)


def unstructure(value: Any) -> Any:
    """Plain data (camelCase keys) for any attrs instance."""
    return converter.unstructure(value)


def snake_to_camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


def camel_to_snake(name: str) -> str:
    return _CAMEL.sub("_", name).lower()
