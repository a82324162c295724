"""File resource types: file, copy, template, write, line, rm, mkdir, stat, temp."""

# ruff: noqa: RUF009  (option() is attrs.field with a description)

from __future__ import annotations

import logging
import os
import re
import shutil
import stat
from pathlib import Path
from typing import Any, Optional, Union

import attrs

from tenfra import hookimpl
from tenfra.errors import TaskError
from tenfra.fileops import (
    FileOutcome,
    Metadata,
    Mode,
    ensure_content,
    format_mode,
    group_name,
    read_bytes,
    set_metadata,
    user_name,
)
from tenfra.pluginmanager import Registry
from tenfra.resource import Context, ResourceType, Result, option

logger = logging.getLogger(__name__)

_in = attrs.validators.in_


def _mode_option() -> Any:
    return option(
        "Permissions: a quoted octal mode ('0644'), YAML octal (0o644) or a "
        "symbolic mode ('u=rw,go=r'). Unset: a new file gets 0666 minus the "
        "umask, an existing one keeps its mode.",
        default=None,
    )


def _owner_option() -> Any:
    return option("Owner, by user name or numeric id as text.", default=None)


def _group_option() -> Any:
    return option("Group, by group name or numeric id as text.", default=None)


def _meta(options: Any) -> Metadata:
    return Metadata(mode=options.mode, owner=options.owner, group=options.group)


def _join_diffs(diffs: list[Optional[str]]) -> Optional[str]:
    found = [d for d in diffs if d]
    return "".join(found) if found else None


def _file_result(
    ctx: Context, path: str, outcome: FileOutcome, values: Optional[dict[str, Any]]
) -> Result:
    data = {"path": path, **(values or {})}
    if not outcome.changed:
        return Result.ok(data)
    ctx.log.debug("%s: %s", path, outcome.message())
    return Result.changed(
        data,
        diff=outcome.diff if ctx.diff else None,
        message=f"{path}: {outcome.message()}",
        check=ctx.check,
    )


def _lstat(path: Union[str, Path]) -> Optional[os.stat_result]:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        return None


def _kind(st: Optional[os.stat_result]) -> str:
    if st is None:
        return "absent"
    if stat.S_ISLNK(st.st_mode):
        return "link"
    if stat.S_ISDIR(st.st_mode):
        return "directory"
    if stat.S_ISREG(st.st_mode):
        return "file"
    return "other"


def _remove(path: str, st: os.stat_result) -> None:
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)


# -- file -----------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class FileOptions:
    path: str = option("Path of the file, directory or link.")
    state: str = option(
        "What ``path`` must be: ``file`` (created empty if missing), "
        "``directory`` (created with its parents), ``link`` (a symbolic link "
        "to ``src``) or ``absent`` (removed, directories with their content).",
        default="file",
        validator=_in(("file", "directory", "link", "absent")),
    )
    src: Optional[str] = option(
        "Target of the symbolic link (``state: link`` only).", default=None
    )
    force: bool = option(
        "For ``state: link``: replace a regular file that is in the way.",
        default=False,
    )
    mode: Optional[Mode] = _mode_option()
    owner: Optional[str] = _owner_option()
    group: Optional[str] = _group_option()

    def __attrs_post_init__(self) -> None:
        if self.state == "link" and not self.src:
            raise ValueError("state 'link' needs 'src', the target of the link")
        if self.state != "link" and self.src is not None:
            raise ValueError(
                f"'src' is only used with state 'link', not {self.state!r}; "
                "use the 'copy' resource to copy a file"
            )


class File(ResourceType):
    """Make a path a file, a directory, a symbolic link, or absent.

    ``file`` creates an empty file when none exists and otherwise manages only
    mode, owner and group (``copy``, ``template`` and ``write`` manage content).

    Example::

        - file: path=/srv/app state=directory mode=0755 owner=app
        - file:
            path: /etc/app/current
            state: link
            src: /etc/app/v2
    """

    name = "file"
    Options = FileOptions
    free_form = "path"

    def apply(self, options: FileOptions, ctx: Context) -> Result:
        path = options.path
        st = _lstat(path)
        kind = _kind(st)
        meta = _meta(options)
        values: dict[str, Any] = {"path": path, "state": options.state}

        if options.state == "absent":
            if st is None:
                return Result.ok(values)
            if not ctx.check:
                _remove(path, st)
            return Result.changed(
                values, message=f"removed {kind} {path}", check=ctx.check
            )

        if options.state == "link":
            return self._link(options, ctx, st, kind, values)

        want = options.state
        if kind == "link" and want == "directory":
            target = os.stat(path) if os.path.exists(path) else None
            if target is not None and stat.S_ISDIR(target.st_mode):
                kind = "directory"
        elif kind == "link" and want == "file":
            target = os.stat(path) if os.path.exists(path) else None
            if target is not None and stat.S_ISREG(target.st_mode):
                kind = "file"
        if kind not in ("absent", want):
            raise TaskError(
                f"{path!r} is a {kind}, not a {want}; remove it first (the 'rm' "
                "resource) or choose another path."
            )
        if kind == "absent":
            meta.resolve()
            if not ctx.check:
                _create(path, want == "directory", meta)
            return Result.changed(
                values, message=f"created {want} {path}", check=ctx.check
            )
        changes = set_metadata(path, meta, check=ctx.check, is_dir=want == "directory")
        if not changes:
            return Result.ok(values)
        return Result.changed(
            values, message=f"{path}: {', '.join(changes)}", check=ctx.check
        )

    def _link(
        self,
        options: FileOptions,
        ctx: Context,
        st: Optional[os.stat_result],
        kind: str,
        values: dict[str, Any],
    ) -> Result:
        path = options.path
        src = options.src or ""
        values["src"] = src
        if kind == "link" and os.readlink(path) == src:
            changes = []
            if options.owner is not None or options.group is not None:
                changes = set_metadata(
                    path,
                    Metadata(owner=options.owner, group=options.group),
                    check=ctx.check,
                    follow=False,
                )
            if not changes:
                return Result.ok(values)
            return Result.changed(
                values, message=f"{path}: {', '.join(changes)}", check=ctx.check
            )
        if kind == "directory":
            raise TaskError(
                f"{path!r} is a directory; a link cannot replace it. Remove it "
                "first (the 'rm' resource) or choose another path."
            )
        if kind in ("file", "other") and not options.force:
            raise TaskError(
                f"{path!r} is a {kind}, not a link; set 'force: true' to replace "
                "it with a link."
            )
        before = os.readlink(path) if kind == "link" else kind
        message = (
            f"link {path} -> {src}"
            if kind == "absent"
            else f"link {path}: {before} -> {src}"
        )
        if not ctx.check:
            tmp = f"{path}.tenfra-link"
            if os.path.lexists(tmp):
                os.unlink(tmp)
            try:
                os.symlink(src, tmp)
            except FileNotFoundError:
                raise TaskError(
                    f"Cannot create the link {path!r}: its directory does not "
                    "exist; create it first (the 'mkdir' resource)."
                ) from None
            os.replace(tmp, path)
            if options.owner is not None or options.group is not None:
                set_metadata(
                    path,
                    Metadata(owner=options.owner, group=options.group),
                    follow=False,
                )
        return Result.changed(values, message=message, check=ctx.check)


def _create(path: str, is_dir: bool, meta: Metadata) -> None:
    if is_dir:
        os.makedirs(path, exist_ok=True)
    else:
        parent = os.path.dirname(path) or "."
        if not os.path.isdir(parent):
            raise TaskError(
                f"Cannot create {path!r}: the directory {parent!r} does not "
                "exist; create it first (the 'mkdir' resource)."
            )
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        os.close(fd)
    set_metadata(path, meta, is_dir=is_dir)


# -- copy -----------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class CopyOptions:
    src: str = option(
        "Asset to copy, relative to the recipe's ``assets/`` folder. A glob "
        "(``conf.d/*.conf``, ``**/*``) or a folder copies every matching file "
        "into the folder ``dest``, keeping relative paths."
    )
    dest: str = option(
        "Destination file; a folder when ``src`` is a glob or a folder, or when "
        "``dest`` ends with ``/``."
    )
    template: bool = option(
        "Render each file as a Jinja2 template before writing it.", default=False
    )
    vars: dict[str, Any] = option(
        "Extra template variables (with ``template: true``).", factory=dict
    )
    mode: Optional[Mode] = _mode_option()
    owner: Optional[str] = _owner_option()
    group: Optional[str] = _group_option()


def _is_glob(text: str) -> bool:
    return any(ch in text for ch in "*?[")


def _asset_files(ctx: Context, src: str) -> tuple[bool, list[tuple[str, Path]]]:
    """(many, [(relative name, local path)]) for an asset name, folder or glob."""
    if _is_glob(src):
        root = ctx.recipe_dir / "assets"
        names = sorted(str(p.relative_to(root)) for p in root.glob(src) if p.is_file())
        if not names:
            raise TaskError(
                f"No asset matches {src!r} in {str(root)!r}; check the pattern "
                "and the recipe's assets/ folder."
            )
        prefix = _glob_prefix(src)
        return True, [(_strip(name, prefix), ctx.asset(name)) for name in names]
    path = ctx.asset(src)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        return True, [
            (str(p.relative_to(path)), ctx.asset(str(Path(src) / p.relative_to(path))))
            for p in files
        ]
    return False, [(path.name, path)]


def _glob_prefix(pattern: str) -> str:
    parts = []
    for part in Path(pattern).parts:
        if _is_glob(part):
            break
        parts.append(part)
    return str(Path(*parts)) if parts else ""


def _strip(name: str, prefix: str) -> str:
    if prefix and name.startswith(prefix + "/"):
        return name[len(prefix) + 1 :]
    return name


def _ensure_parent(directory: Path, ctx: Context, created: list[str]) -> None:
    if directory.is_dir():
        return
    if directory.exists():
        raise TaskError(
            f"{str(directory)!r} is a file, but a folder is needed there; remove "
            "it or choose another destination."
        )
    if not ctx.check:
        directory.mkdir(parents=True, exist_ok=True)
    created.append(str(directory))


class Copy(ResourceType):
    """Copy files from the recipe's assets, optionally rendered as templates.

    Content is compared before anything is written; an unchanged file costs a
    ``stat`` and, when the sizes match, one read.  Writes are atomic.

    Example::

        - copy: src=nginx.conf dest=/etc/nginx/nginx.conf mode=0644
        - copy:
            src: "conf.d/*.conf"
            dest: /etc/nginx/conf.d/
            template: true
    """

    name = "copy"
    Options = CopyOptions

    def apply(self, options: CopyOptions, ctx: Context) -> Result:
        many, files = _asset_files(ctx, options.src)
        meta = _meta(options)
        into_dir = many or options.dest.endswith("/")
        dest_root = Path(options.dest)
        created_dirs: list[str] = []
        changed: list[str] = []
        written: list[str] = []
        diffs: list[Optional[str]] = []
        messages: list[str] = []
        for rel, local in files:
            dest = dest_root / rel if into_dir else dest_root
            if into_dir:
                _ensure_parent(dest.parent, ctx, created_dirs)
            data = local.read_bytes()
            if options.template:
                data = _render(ctx, local, data, options.vars)
            outcome = ensure_content(
                dest,
                data,
                meta,
                check=ctx.check,
                diff=ctx.diff,
                sensitive=ctx.sensitive,
            )
            written.append(str(dest))
            if outcome.changed:
                changed.append(str(dest))
                diffs.append(outcome.diff)
                messages.append(f"{dest}: {outcome.message()}")
        single = into_dir and not many
        path = str(dest_root / files[0][0]) if single else str(dest_root)
        values: dict[str, Any] = {
            "path": path,
            "files": written,
            "changedFiles": changed,
        }
        if not changed and not created_dirs:
            return Result.ok(values)
        messages[:0] = [f"created folder {d}" for d in created_dirs]
        return Result.changed(
            values,
            diff=_join_diffs(diffs) if ctx.diff else None,
            message="; ".join(messages),
            check=ctx.check,
        )


def _render(ctx: Context, local: Path, data: bytes, extra: dict[str, Any]) -> bytes:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise TaskError(
            f"The asset {local.name!r} is not UTF-8 text and cannot be rendered "
            "as a template; drop 'template: true' for binary files."
        ) from None
    return ctx.render_text(text, extra or None).encode("utf-8")


# -- template -------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class TemplateOptions:
    src: str = option(
        "Jinja2 template in the recipe's ``assets/`` folder (usually ``.j2``)."
    )
    dest: str = option("Destination file.")
    vars: dict[str, Any] = option(
        "Extra variables for this template, on top of the task's scope.",
        factory=dict,
    )
    mode: Optional[Mode] = _mode_option()
    owner: Optional[str] = _owner_option()
    group: Optional[str] = _group_option()


class Template(ResourceType):
    """Render a Jinja2 template from the assets into a file.

    The template sees every variable in scope, the facts, and ``vars``.

    Example::

        - template:
            src: app.conf.j2
            dest: /etc/app.conf
            vars: {workers: 4}
    """

    name = "template"
    Options = TemplateOptions

    def apply(self, options: TemplateOptions, ctx: Context) -> Result:
        local = ctx.asset(options.src)
        if local.is_dir():
            raise TaskError(
                f"The template {options.src!r} is a folder; name one file, or use "
                "'copy' with 'template: true' for many."
            )
        data = _render(ctx, local, local.read_bytes(), options.vars)
        outcome = ensure_content(
            options.dest,
            data,
            _meta(options),
            check=ctx.check,
            diff=ctx.diff,
            sensitive=ctx.sensitive,
        )
        return _file_result(ctx, options.dest, outcome, None)


# -- write ----------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class WriteOptions:
    dest: str = option("Destination file.")
    value: Any = option(
        "The value to write: any YAML value for ``yaml``/``json``, a string for "
        "``raw``."
    )
    format: Optional[str] = option(
        "``yaml``, ``json`` or ``raw``; unset: from the extension of ``dest`` "
        "(``.json``, ``.yaml``/``.yml``), otherwise ``raw``.",
        default=None,
        validator=attrs.validators.optional(_in(("yaml", "json", "raw"))),
    )
    indent: int = option("Indentation of JSON output.", default=2)
    sort_keys: bool = option("Sort mapping keys in the output.", default=False)
    mode: Optional[Mode] = _mode_option()
    owner: Optional[str] = _owner_option()
    group: Optional[str] = _group_option()


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value, key=str)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


def serialise(value: Any, fmt: str, *, indent: int = 2, sort_keys: bool = False) -> str:
    """``value`` as YAML, JSON or raw text (the ``write`` resource's formats)."""
    from tenfra.yamlio import dump_yaml, to_plain

    plain = to_plain(value)
    if sort_keys:
        plain = _sorted(plain)
    if fmt == "json":
        import json

        return json.dumps(plain, indent=indent, ensure_ascii=False) + "\n"
    if fmt == "yaml":
        return dump_yaml(plain)
    if not isinstance(plain, str):
        kind = type(plain).__name__
        raise TaskError(
            f"format 'raw' writes text, but the value is a {kind}; give a string, "
            "or set 'format: json' or 'format: yaml'."
        )
    return plain


class Write(ResourceType):
    """Serialise a value into a file as YAML, JSON or raw text.

    Example::

        - write:
            dest: /etc/app/config.json
            value: {port: 8080, debug: false}
        - write: dest=/etc/motd value="Managed by tenfra\\n"
    """

    name = "write"
    Options = WriteOptions

    def apply(self, options: WriteOptions, ctx: Context) -> Result:
        fmt = options.format
        if fmt is None:
            suffix = Path(options.dest).suffix.lower()
            fmt = {".json": "json", ".yaml": "yaml", ".yml": "yaml"}.get(suffix, "raw")
        text = serialise(
            options.value, fmt, indent=options.indent, sort_keys=options.sort_keys
        )
        outcome = ensure_content(
            options.dest,
            text.encode("utf-8"),
            _meta(options),
            check=ctx.check,
            diff=ctx.diff,
            sensitive=ctx.sensitive,
        )
        return _file_result(ctx, options.dest, outcome, {"format": fmt})


# -- line -----------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class LineOptions:
    path: str = option("The file to edit.")
    line: Optional[str] = option(
        "The whole line that must be present (or absent).", default=None
    )
    regexp: Optional[str] = option(
        "A regular expression: the last matching line is replaced by ``line``; "
        "with ``state: absent`` every matching line is removed.",
        default=None,
    )
    block: Optional[str] = option(
        "Several lines kept together between two marker lines (instead of ``line``).",
        default=None,
    )
    marker: str = option(
        "Marker line around ``block``; ``{mark}`` becomes BEGIN and END.",
        default="# {mark} TENFRA MANAGED BLOCK",
    )
    state: str = option(
        "``present`` or ``absent``.",
        default="present",
        validator=_in(("present", "absent")),
    )
    insert_after: Optional[str] = option(
        "Where a new line goes: after the last line matching this regular "
        "expression, or ``EOF`` (the default).",
        default=None,
    )
    insert_before: Optional[str] = option(
        "Where a new line goes: before the first line matching this regular "
        "expression, or ``BOF``.",
        default=None,
    )
    create: bool = option(
        "Create the file when it does not exist (otherwise that is an error).",
        default=False,
    )
    mode: Optional[Mode] = _mode_option()
    owner: Optional[str] = _owner_option()
    group: Optional[str] = _group_option()

    def __attrs_post_init__(self) -> None:
        if self.line is not None and self.block is not None:
            raise ValueError("give either 'line' or 'block', not both")
        if self.block is not None and self.regexp is not None:
            raise ValueError("'regexp' applies to 'line', not to 'block'")
        if self.state == "present" and self.line is None and self.block is None:
            raise ValueError("state 'present' needs 'line' or 'block'")
        if (
            self.state == "absent"
            and self.line is None
            and self.block is None
            and self.regexp is None
        ):
            raise ValueError("state 'absent' needs 'line', 'regexp' or 'block'")
        if self.insert_after is not None and self.insert_before is not None:
            raise ValueError("give either 'insertAfter' or 'insertBefore', not both")
        if self.line is not None and "\n" in self.line:
            raise ValueError("'line' is one line; use 'block' for several lines")
        if "{mark}" not in self.marker:
            raise ValueError("'marker' must contain '{mark}'")
        for name in ("regexp", "insert_after", "insert_before"):
            pattern = getattr(self, name)
            if pattern is None or pattern in ("EOF", "BOF"):
                continue
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(
                    f"{name} {pattern!r} is not a valid regular expression: {exc}"
                ) from None


def _insert_index(lines: list[str], options: LineOptions) -> int:
    if options.insert_before is not None:
        if options.insert_before == "BOF":
            return 0
        rx = re.compile(options.insert_before)
        for index, text in enumerate(lines):
            if rx.search(text):
                return index
        return len(lines)
    if options.insert_after is not None and options.insert_after != "EOF":
        rx = re.compile(options.insert_after)
        found = None
        for index, text in enumerate(lines):
            if rx.search(text):
                found = index
        if found is not None:
            return found + 1
    return len(lines)


def edit_lines(lines: list[str], options: LineOptions) -> list[str]:
    """The new lines (without line endings) after applying ``options``."""
    lines = list(lines)
    if options.block is not None:
        begin = options.marker.replace("{mark}", "BEGIN")
        end = options.marker.replace("{mark}", "END")
        start = stop = None
        for index, text in enumerate(lines):
            if text == begin and start is None:
                start = index
            elif text == end and start is not None:
                stop = index
                break
        body = options.block.rstrip("\n").split("\n") if options.block else []
        wanted = [begin, *body, end]
        if start is not None and stop is not None:
            if options.state == "absent":
                return lines[:start] + lines[stop + 1 :]
            return lines[:start] + wanted + lines[stop + 1 :]
        if options.state == "absent":
            return lines
        at = _insert_index(lines, options)
        return lines[:at] + wanted + lines[at:]

    rx = re.compile(options.regexp) if options.regexp is not None else None
    if options.state == "absent":
        return [
            text
            for text in lines
            if not ((rx is not None and rx.search(text)) or text == options.line)
        ]
    line = options.line or ""
    if rx is not None:
        last = None
        for index, text in enumerate(lines):
            if rx.search(text):
                last = index
        if last is not None:
            lines[last] = line
            return lines
    if line in lines:
        return lines
    at = _insert_index(lines, options)
    return [*lines[:at], line, *lines[at:]]


class Line(ResourceType):
    """Ensure a line, or a block of lines between markers, in a text file.

    With ``regexp`` the last matching line is replaced; otherwise the line is
    added when no identical line exists.  ``block`` manages several lines
    between ``# BEGIN TENFRA MANAGED BLOCK`` and ``# END ...`` markers.

    Example::

        - line:
            path: /etc/ssh/sshd_config
            regexp: '^#?PermitRootLogin'
            line: PermitRootLogin no
        - line:
            path: /etc/hosts
            block: |
              10.0.0.5 db
              10.0.0.6 cache
    """

    name = "line"
    Options = LineOptions

    def apply(self, options: LineOptions, ctx: Context) -> Result:
        path = options.path
        old = read_bytes(path) if not os.path.isdir(path) else None
        if os.path.isdir(path):
            raise TaskError(f"{path!r} is a directory, not a text file.")
        if old is None and options.state == "absent":
            return Result.ok({"path": path})
        if old is None and not options.create:
            raise TaskError(
                f"The file {path!r} does not exist; set 'create: true' to create "
                "it, or check the path."
            )
        try:
            text = (old or b"").decode("utf-8")
        except UnicodeDecodeError:
            raise TaskError(
                f"{path!r} is not UTF-8 text; 'line' edits text files."
            ) from None
        newline = "\r\n" if "\r\n" in text else "\n"
        lines = text.splitlines()
        new_lines = edit_lines(lines, options)
        if new_lines == lines and old is not None:
            new_text = text
        else:
            new_text = newline.join(new_lines) + (newline if new_lines else "")
        outcome = ensure_content(
            path,
            new_text.encode("utf-8"),
            _meta(options),
            check=ctx.check,
            diff=ctx.diff,
            sensitive=ctx.sensitive,
        )
        return _file_result(ctx, path, outcome, None)


# -- rm -------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class RmOptions:
    path: Union[str, list[str]] = option("A path, or a list of paths, to remove.")
    recurse: bool = option(
        "Remove non-empty folders with their content (otherwise an error).",
        default=False,
    )


class Rm(ResourceType):
    """Remove files, links or folders; nothing to do when already absent.

    Example::

        - rm: path=/tmp/build.lock
        - rm:
            path: [/var/cache/app, /etc/app/old.conf]
            recurse: true
    """

    name = "rm"
    Options = RmOptions
    free_form = "path"

    def apply(self, options: RmOptions, ctx: Context) -> Result:
        paths = [options.path] if isinstance(options.path, str) else options.path
        removed = []
        for path in paths:
            st = _lstat(path)
            if st is None:
                continue
            if stat.S_ISDIR(st.st_mode) and not options.recurse and os.listdir(path):
                raise TaskError(
                    f"The folder {path!r} is not empty; set 'recurse: true' to "
                    "remove it with its content."
                )
            if not ctx.check:
                if stat.S_ISDIR(st.st_mode):
                    shutil.rmtree(path)
                else:
                    os.unlink(path)
            removed.append(path)
        values = {"paths": paths, "removed": removed}
        if not removed:
            return Result.ok(values)
        return Result.changed(
            values, message=f"removed {', '.join(removed)}", check=ctx.check
        )


# -- mkdir ----------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class MkdirOptions:
    path: str = option("The folder to create.")
    parents: bool = option(
        "Create missing parent folders too (with default permissions).",
        default=True,
    )
    mode: Optional[Mode] = _mode_option()
    owner: Optional[str] = _owner_option()
    group: Optional[str] = _group_option()


class Mkdir(ResourceType):
    """Create a folder (and its parents) and manage its mode and owner.

    Example::

        - mkdir: path=/srv/app/data mode=0750 owner=app group=app
    """

    name = "mkdir"
    Options = MkdirOptions
    free_form = "path"

    def apply(self, options: MkdirOptions, ctx: Context) -> Result:
        path = options.path
        meta = _meta(options)
        values = {"path": path}
        if os.path.isdir(path):
            changes = set_metadata(path, meta, check=ctx.check, is_dir=True)
            if not changes:
                return Result.ok(values)
            return Result.changed(
                values, message=f"{path}: {', '.join(changes)}", check=ctx.check
            )
        if os.path.lexists(path):
            raise TaskError(
                f"{path!r} exists and is not a folder; remove it first (the 'rm' "
                "resource) or choose another path."
            )
        parent = os.path.dirname(os.path.abspath(path))
        if not options.parents and not os.path.isdir(parent):
            raise TaskError(
                f"Cannot create {path!r}: its parent {parent!r} does not exist; "
                "set 'parents: true' or create it first."
            )
        meta.resolve()
        if not ctx.check:
            try:
                os.makedirs(path)
            except NotADirectoryError:
                raise TaskError(
                    f"Cannot create {path!r}: a part of its path is a file."
                ) from None
            set_metadata(path, meta, is_dir=True)
        return Result.changed(values, message=f"created folder {path}", check=ctx.check)


# -- stat -----------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class StatOptions:
    path: str = option("The path to inspect.")
    follow: bool = option("Follow a symbolic link to its target.", default=True)
    checksum: bool = option(
        "Also compute the sha256 of a regular file (value ``sha256``).",
        default=False,
    )


class Stat(ResourceType):
    """Read facts about a path; changes nothing.

    Values: ``exists``, ``type`` (file, directory, link, other), ``size``,
    ``mode``, ``uid``, ``gid``, ``owner``, ``group``, ``mtime``,
    ``linkTarget`` and, with ``checksum: true``, ``sha256``.

    Example::

        - stat: path=/etc/app.conf
          out: conf
        - debug: msg="${{ conf.mode }}"
          if: conf.exists
    """

    name = "stat"
    Options = StatOptions
    free_form = "path"

    def apply(self, options: StatOptions, ctx: Context) -> Result:
        path = options.path
        try:
            st = os.stat(path) if options.follow else os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            return Result.ok({"path": path, "exists": False})
        values: dict[str, Any] = {
            "path": path,
            "exists": True,
            "type": _kind(st),
            "size": st.st_size,
            "mode": format_mode(st.st_mode),
            "uid": st.st_uid,
            "gid": st.st_gid,
            "owner": user_name(st.st_uid),
            "group": group_name(st.st_gid),
            "mtime": st.st_mtime,
            "linkTarget": os.readlink(path) if os.path.islink(path) else None,
        }
        if options.checksum and stat.S_ISREG(st.st_mode):
            import hashlib

            digest = hashlib.sha256()
            with open(path, "rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(chunk)
            values["sha256"] = digest.hexdigest()
        return Result.ok(values)


# -- temp / temp_dir ------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class TempOptions:
    prefix: str = option("Start of the file name.", default="tenfra-")
    suffix: str = option("End of the file name (such as ``.conf``).", default="")
    dir: Optional[str] = option(
        "Folder to create it in; unset: the system's temporary folder.",
        default=None,
    )
    content: Optional[str] = option(
        "Text written into the new file (``temp`` only).", default=None
    )


@attrs.frozen(kw_only=True)
class TempDirOptions:
    prefix: str = option("Start of the folder name.", default="tenfra-")
    suffix: str = option("End of the folder name.", default="")
    dir: Optional[str] = option(
        "Folder to create it in; unset: the system's temporary folder.",
        default=None,
    )


def _check_temp_parent(directory: Optional[str]) -> None:
    if directory is not None and not os.path.isdir(directory):
        raise TaskError(
            f"The folder {directory!r} for the temporary path does not exist; "
            "create it first or drop 'dir'."
        )


class Temp(ResourceType):
    """Create a new private temporary file (mode 0600) and return its path.

    Scratch space is not managed state, so the result is ``ok`` rather than
    ``changed``; remove the file with ``rm`` when done. In check mode nothing
    is created and ``path`` names a file that does not exist.

    Example::

        - temp: suffix=.sql
          out: dump
        - exec: argv=[pg_dump, -f, "${{ dump.path }}", app]
    """

    name = "temp"
    Options = TempOptions

    def apply(self, options: TempOptions, ctx: Context) -> Result:
        import tempfile

        _check_temp_parent(options.dir)
        if ctx.check:
            base = options.dir or tempfile.gettempdir()
            name = f"{options.prefix}check-mode{options.suffix}"
            return Result.ok(
                {"path": os.path.join(base, name)},
                message="check mode: no temporary file created",
            )
        fd, path = tempfile.mkstemp(
            prefix=options.prefix, suffix=options.suffix, dir=options.dir
        )
        with os.fdopen(fd, "wb") as handle:
            if options.content is not None:
                handle.write(options.content.encode("utf-8"))
        return Result.ok({"path": path})


class TempDir(ResourceType):
    """Create a new private temporary folder (mode 0700) and return its path.

    Like ``temp``, the result is ``ok``: scratch space is not managed state.

    Example::

        - temp_dir: {}
          out: work
        - exec: argv=[tar, -xf, /srv/in.tar, -C, "${{ work.path }}"]
    """

    name = "temp_dir"
    Options = TempDirOptions

    def apply(self, options: TempDirOptions, ctx: Context) -> Result:
        import tempfile

        _check_temp_parent(options.dir)
        if ctx.check:
            base = options.dir or tempfile.gettempdir()
            name = f"{options.prefix}check-mode{options.suffix}"
            return Result.ok(
                {"path": os.path.join(base, name)},
                message="check mode: no temporary folder created",
            )
        path = tempfile.mkdtemp(
            prefix=options.prefix, suffix=options.suffix, dir=options.dir
        )
        return Result.ok({"path": path})


RESOURCE_TYPES: list[type[ResourceType]] = [
    File,
    Copy,
    Template,
    Write,
    Line,
    Rm,
    Mkdir,
    Stat,
    Temp,
    TempDir,
]


@hookimpl
def tenfra_add_resource_types(registry: Registry[Any]) -> None:
    for cls in RESOURCE_TYPES:
        registry.add_resource_type(cls)
