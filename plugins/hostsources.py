"""Host sources for inventories: raw, file, glob, http."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import attrs

from tenfra import hookimpl
from tenfra.inventory import (
    HostRecord,
    HostSource,
    HttpOptions,
    SourceContext,
    fetch_document,
    parse_hosts,
    read_document,
    safe_url,
)
from tenfra.pluginmanager import Registry

logger = logging.getLogger(__name__)


@attrs.frozen(kw_only=True)
class RawOptions:
    """Options of the ``raw`` host source."""

    hosts: Any = attrs.field(
        metadata={
            "description": "Host names (ranges such as web-[01:03] expand), or a "
            "mapping of names to {vars, groups}."
        }
    )


class Raw(HostSource):
    """Hosts written inline, with ranges expanded.

    Example::

        hostSources:
          - raw: {hosts: ["web-[01:03]", db-01]}
    """

    name = "raw"
    Options = RawOptions

    def load(self, options: RawOptions, ctx: SourceContext) -> list[HostRecord]:
        return _records(options.hosts, ctx.label, ctx)


@attrs.frozen(kw_only=True)
class FileOptions:
    """Options of the ``file`` host source."""

    path: str = attrs.field(
        metadata={
            "description": "A YAML or JSON file of hosts, relative to the "
            "inventory's folder."
        }
    )


class File(HostSource):
    """Hosts from one YAML or JSON file (a list of names, or a mapping).

    Example::

        hostSources:
          - file: hosts/cloud.yaml
    """

    name = "file"
    Options = FileOptions
    free_form = "path"

    def load(self, options: FileOptions, ctx: SourceContext) -> list[HostRecord]:
        data = read_document(ctx.path(options.path), options.path, ctx)
        return _records(data, options.path, ctx)


@attrs.frozen(kw_only=True)
class GlobOptions:
    """Options of the ``glob`` host source."""

    pattern: str = attrs.field(
        metadata={
            "description": "A glob of YAML or JSON files (hosts/*.yaml), relative "
            "to the inventory's folder; files are read in sorted order."
        }
    )
    allow_empty: bool = attrs.field(
        default=False,
        metadata={"description": "Accept a pattern that matches no file."},
    )


class Glob(HostSource):
    """Hosts from every file matching a glob, in sorted order.

    Example::

        hostSources:
          - glob: hosts/*.yaml
    """

    name = "glob"
    Options = GlobOptions
    free_form = "pattern"

    def load(self, options: GlobOptions, ctx: SourceContext) -> list[HostRecord]:
        paths = glob_files(options.pattern, ctx)
        if not paths and not options.allow_empty:
            raise ctx.fail(
                f"no file matches {options.pattern!r} under {ctx.base_dir}; check "
                "the pattern, or set allowEmpty: true."
            )
        records: list[HostRecord] = []
        for path in paths:
            display = ctx.display(path)
            records.extend(_records(read_document(path, display, ctx), display, ctx))
        _refuse_duplicates(records, ctx)
        return records


class Http(HostSource):
    """Hosts from a JSON or YAML document served over HTTP(S).

    The body is a list of names or ``{name, vars, groups}``, or a mapping of
    names to ``{vars, groups}``.  Example::

        hostSources:
          - http:
              url: https://cmdb.example.com/api/hosts
              tokenEnv: CMDB_TOKEN
              timeout: 5
    """

    name = "http"
    Options = HttpOptions
    free_form = "url"

    def load(self, options: HttpOptions, ctx: SourceContext) -> list[HostRecord]:
        data = fetch_document(options, ctx)
        return _records(data, safe_url(options.url), ctx)


def glob_files(pattern: str, ctx: SourceContext) -> list[Path]:
    """Files matching ``pattern`` (``**`` recurses) under ``ctx.base_dir``, sorted."""
    import glob as globmod

    full = pattern if Path(pattern).is_absolute() else str(ctx.base_dir / pattern)
    return sorted(
        Path(found)
        for found in globmod.glob(full, recursive=True)
        if Path(found).is_file()
    )


def _records(data: Any, display: str, ctx: SourceContext) -> list[HostRecord]:
    from tenfra.errors import ValidationError

    try:
        return parse_hosts(data, source=display, path=())
    except ValidationError as exc:
        raise ctx.fail(str(exc)) from None


def _refuse_duplicates(records: list[HostRecord], ctx: SourceContext) -> None:
    seen: set[str] = set()
    for record in records:
        if record.name in seen:
            raise ctx.fail(
                f"host {record.name!r} is defined in more than one file; keep one "
                "definition."
            )
        seen.add(record.name)


@hookimpl
def tenfra_add_host_sources(registry: Registry[Any]) -> None:
    for cls in (Raw, File, Glob, Http):
        registry.add_host_source(cls)
