"""Vars sources: file, glob, http, env."""

from __future__ import annotations

import logging
from typing import Any, Mapping, Optional

import attrs

from tenfra import hookimpl
from tenfra.convert import type_name_of
from tenfra.inventory import (
    HttpOptions,
    SourceContext,
    VarsSource,
    fetch_document,
    read_document,
    safe_url,
)
from tenfra.pluginmanager import Registry
from tenfra.yamlio import to_plain

logger = logging.getLogger(__name__)


@attrs.frozen(kw_only=True)
class FileOptions:
    """Options of the ``file`` vars source."""

    path: str = attrs.field(
        metadata={
            "description": "A YAML or JSON file holding a mapping of vars, relative "
            "to the inventory's (or recipe's) folder."
        }
    )
    optional: bool = attrs.field(
        default=False,
        metadata={"description": "A missing file gives no vars instead of an error."},
    )


class File(VarsSource):
    """Vars from one YAML or JSON file.

    Example::

        varsSources:
          - file: vars/common.yaml
    """

    name = "file"
    Options = FileOptions
    free_form = "path"

    def load(self, options: FileOptions, ctx: SourceContext) -> Mapping[str, Any]:
        path = ctx.path(options.path)
        if options.optional and not path.exists():
            logger.debug("%s: optional file %s is absent", ctx.label, path)
            return {}
        return _mapping(read_document(path, options.path, ctx), options.path, ctx)


@attrs.frozen(kw_only=True)
class GlobOptions:
    """Options of the ``glob`` vars source."""

    pattern: str = attrs.field(
        metadata={
            "description": "A glob of YAML or JSON files (vars/*.yaml); they are "
            "merged in sorted order, a later file replacing a key."
        }
    )
    allow_empty: bool = attrs.field(
        default=False,
        metadata={"description": "Accept a pattern that matches no file."},
    )


class Glob(VarsSource):
    """Vars from every file matching a glob, merged in sorted order.

    Example::

        varsSources:
          - glob: vars/*.yaml
    """

    name = "glob"
    Options = GlobOptions
    free_form = "pattern"

    def load(self, options: GlobOptions, ctx: SourceContext) -> Mapping[str, Any]:
        from tenfra.plugins.hostsources import glob_files

        paths = glob_files(options.pattern, ctx)
        if not paths and not options.allow_empty:
            raise ctx.fail(
                f"no file matches {options.pattern!r} under {ctx.base_dir}; check "
                "the pattern, or set allowEmpty: true."
            )
        merged: dict[str, Any] = {}
        for path in paths:
            display = ctx.display(path)
            merged.update(_mapping(read_document(path, display, ctx), display, ctx))
        return merged


class Http(VarsSource):
    """Vars from a JSON or YAML mapping served over HTTP(S).

    Example::

        varsSources:
          - http: {url: "https://vault.example.com/v1/app", tokenEnv: VAULT_TOKEN}
    """

    name = "http"
    Options = HttpOptions
    free_form = "url"

    def load(self, options: HttpOptions, ctx: SourceContext) -> Mapping[str, Any]:
        return _mapping(fetch_document(options, ctx), safe_url(options.url), ctx)


@attrs.frozen(kw_only=True)
class EnvOptions:
    """Options of the ``env`` vars source."""

    prefix: Optional[str] = attrs.field(
        default=None,
        metadata={"description": "Take every variable starting with this prefix."},
    )
    names: list[str] = attrs.field(
        factory=list, metadata={"description": "Take these variables by name."}
    )
    strip_prefix: bool = attrs.field(
        default=True,
        metadata={"description": "Drop the prefix from the var names."},
    )
    lowercase: bool = attrs.field(
        default=True, metadata={"description": "Lower-case the var names."}
    )
    required: bool = attrs.field(
        default=False,
        metadata={"description": "Fail when a variable in 'names' is not set."},
    )

    def __attrs_post_init__(self) -> None:
        if not self.prefix and not self.names:
            raise ValueError(
                "give a prefix (such as 'APP_') or a list of names; taking the "
                "whole environment is refused"
            )


class Env(VarsSource):
    """Vars from environment variables; values are strings.

    Example (``APP_PORT=8080`` gives ``port: "8080"``)::

        varsSources:
          - env: {prefix: APP_}
    """

    name = "env"
    Options = EnvOptions
    free_form = "prefix"

    def load(self, options: EnvOptions, ctx: SourceContext) -> Mapping[str, Any]:
        found: dict[str, Any] = {}
        environ = ctx.environ
        if options.prefix:
            for key in sorted(environ):
                if key.startswith(options.prefix) and key != options.prefix:
                    name = key[len(options.prefix) :] if options.strip_prefix else key
                    found[_name(name, options)] = environ[key]
        for key in options.names:
            if key in environ:
                found[_name(key, options)] = environ[key]
            elif options.required:
                raise ctx.fail(
                    f"the environment variable {key!r} is not set; export it, or "
                    "set required: false."
                )
        return found


def _name(key: str, options: EnvOptions) -> str:
    return key.lower() if options.lowercase else key


def _mapping(data: Any, display: str, ctx: SourceContext) -> dict[str, Any]:
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ctx.fail(
            f"{display} holds {type_name_of(data)}, but a vars document must be a "
            "mapping of names to values at its top level."
        )
    plain: dict[str, Any] = to_plain(data)
    for key in data:
        if not isinstance(key, str):
            raise ctx.fail(f"{display}: var name {key!r} is not a string; quote it.")
    return plain


@hookimpl
def tenfra_add_vars_sources(registry: Registry[Any]) -> None:
    for cls in (File, Glob, Http, Env):
        registry.add_vars_source(cls)
