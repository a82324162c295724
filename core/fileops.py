"""File helpers for resource types: atomic writes, modes, owners, diffs."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Any, Optional, Union

import attrs

from tenfra.convert import StrictTypeError, converter, type_name_of
from tenfra.errors import TaskError

logger = logging.getLogger(__name__)

HIDDEN = "(content hidden: the task is sensitive)"

# -- modes ----------------------------------------------------------------------------

_OCTAL = re.compile(r"^(?:0o|0)?([0-7]{3,4})$")
_CLAUSE = re.compile(r"^([ugoa]*)([-+=])([rwxXst]*|[ugo])$")
_WHO = {"u": 0o4700, "g": 0o2070, "o": 0o1007}
_PERM_BITS = {
    "r": 0o444,
    "w": 0o222,
    "x": 0o111,
    "s": 0o6000,
    "t": 0o1000,
}


class Mode:
    """A file mode: absolute octal (``"0644"``) or symbolic (``"u=rw,go=r"``).

    A symbolic mode is applied to the current mode, as ``chmod`` does it; for a
    new file the starting point is ``0666`` (``0777`` for a directory) minus
    the umask.
    """

    __slots__ = ("_absolute", "_clauses", "text")

    def __init__(self, text: str) -> None:
        self.text = text.strip()
        self._absolute: Optional[int] = None
        self._clauses: list[tuple[str, str, str]] = []
        match = _OCTAL.match(self.text)
        if match:
            self._absolute = int(match.group(1), 8)
            return
        if not self.text:
            raise ValueError("a file mode cannot be empty; write it like '0644'")
        for clause in self.text.split(","):
            found = _CLAUSE.match(clause.strip())
            if not found:
                raise ValueError(
                    f"{self.text!r} is not a file mode; write an octal mode like "
                    "'0644' or a symbolic one like 'u=rw,go=r'"
                )
            who, op, perms = found.groups()
            self._clauses.append((who or "a", op, perms))

    @classmethod
    def from_int(cls, value: int) -> Mode:
        return cls(format(value, "04o"))

    @property
    def is_absolute(self) -> bool:
        return self._absolute is not None

    def apply(self, current: int, *, is_dir: bool = False) -> int:
        """The permission bits after applying this mode to ``current``."""
        if self._absolute is not None:
            return self._absolute
        result = stat.S_IMODE(current)
        for who, op, perms in self._clauses:
            mask = 0
            for letter in "ugo" if "a" in who else who:
                mask |= _WHO[letter]
            bits = 0
            if perms in ("u", "g", "o"):
                shift = {"u": 6, "g": 3, "o": 0}[perms]
                rwx = (result >> shift) & 0o7
                bits = rwx << 6 | rwx << 3 | rwx
            else:
                for letter in perms:
                    if letter == "X":
                        if is_dir or current & 0o111:
                            bits |= 0o111
                    else:
                        bits |= _PERM_BITS[letter]
            bits &= mask
            if op == "+":
                result |= bits
            elif op == "-":
                result &= ~bits
            else:
                keep = 0o7777 & ~(mask & 0o777)
                if "s" not in perms:
                    keep &= ~(mask & 0o6000)
                if "t" not in perms:
                    keep &= ~(mask & 0o1000)
                result = (result & keep) | bits
        return result

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"Mode({self.text!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mode) and self.text == other.text

    def __hash__(self) -> int:
        return hash(self.text)


def _structure_mode(value: Any, _: Any) -> Mode:
    if isinstance(value, Mode):
        return value
    if isinstance(value, bool):
        raise StrictTypeError(
            f"expected a file mode, got {type_name_of(value)}; write it like '0644'"
        )
    if isinstance(value, int):
        if type(value).__name__ == "OctalInt":
            return Mode.from_int(int(value))
        digits = str(value)
        hint = (
            f'"0{digits}" or 0o{digits}'
            if set(digits) <= set("01234567")
            else '"0644" or 0o644'
        )
        raise StrictTypeError(
            f"a file mode must be quoted: the plain number {value} is read as a "
            f"decimal integer (YAML 1.2 does not treat a leading 0 as octal); "
            f"write {hint}"
        )
    if not isinstance(value, str):
        raise StrictTypeError(
            f"expected a file mode, got {type_name_of(value)}; write it like '0644'"
        )
    try:
        return Mode(value)
    except ValueError as exc:
        raise StrictTypeError(str(exc)) from None


converter.register_structure_hook(Mode, _structure_mode)
converter.register_unstructure_hook(Mode, str)


def format_mode(bits: int) -> str:
    return format(stat.S_IMODE(bits), "04o")


def new_file_mode(is_dir: bool = False) -> int:
    """The mode a new file (or directory) gets with the current umask."""
    umask = os.umask(0)
    os.umask(umask)
    return (0o777 if is_dir else 0o666) & ~umask


# -- owners ---------------------------------------------------------------------------


def resolve_uid(owner: str) -> int:
    """A user id from a user name or a number given as text."""
    import pwd

    try:
        return pwd.getpwnam(owner).pw_uid
    except KeyError:
        if owner.isdigit():
            return int(owner)
    raise TaskError(
        f"The user {owner!r} does not exist on this host; create it first (the "
        "'user' resource) or give a numeric id."
    )


def resolve_gid(group: str) -> int:
    """A group id from a group name or a number given as text."""
    import grp

    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        if group.isdigit():
            return int(group)
    raise TaskError(
        f"The group {group!r} does not exist on this host; create it first (the "
        "'group' resource) or give a numeric id."
    )


def user_name(uid: int) -> str:
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def group_name(gid: int) -> str:
    import grp

    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


# -- metadata -------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Metadata:
    """The wanted mode, owner and group of a path (None: leave as it is)."""

    mode: Optional[Mode] = None
    owner: Optional[str] = None
    group: Optional[str] = None

    def resolve(self) -> tuple[int, int]:
        """(uid, gid), -1 for "leave as it is"; raises TaskError for unknown names."""
        uid = resolve_uid(self.owner) if self.owner is not None else -1
        gid = resolve_gid(self.group) if self.group is not None else -1
        return uid, gid

    def target_mode(self, current: Optional[int], *, is_dir: bool = False) -> int:
        """The permission bits wanted, starting from ``current`` (None: new)."""
        base = current if current is not None else new_file_mode(is_dir)
        if self.mode is None:
            return stat.S_IMODE(base)
        return self.mode.apply(base, is_dir=is_dir)


def metadata_changes(
    st: os.stat_result, meta: Metadata, *, is_dir: bool = False
) -> list[str]:
    """What :func:`set_metadata` would change, as short phrases."""
    changes = []
    uid, gid = meta.resolve()
    mode = meta.target_mode(st.st_mode, is_dir=is_dir)
    if mode != stat.S_IMODE(st.st_mode):
        changes.append(f"mode {format_mode(st.st_mode)} -> {format_mode(mode)}")
    if uid not in (-1, st.st_uid):
        changes.append(f"owner {user_name(st.st_uid)} -> {user_name(uid)}")
    if gid not in (-1, st.st_gid):
        changes.append(f"group {group_name(st.st_gid)} -> {group_name(gid)}")
    return changes


def set_metadata(
    path: Union[str, Path],
    meta: Metadata,
    *,
    check: bool = False,
    is_dir: bool = False,
    follow: bool = True,
) -> list[str]:
    """Bring mode, owner and group of ``path`` to ``meta``; return what changed."""
    st = os.stat(path) if follow else os.lstat(path)
    changes = metadata_changes(st, meta, is_dir=is_dir)
    if not changes or check:
        return changes
    uid, gid = meta.resolve()
    if uid not in (-1, st.st_uid) or gid not in (-1, st.st_gid):
        _chown(path, uid, gid, follow=follow)
    mode = meta.target_mode(st.st_mode, is_dir=is_dir)
    if mode != stat.S_IMODE(st.st_mode) and (follow or not stat.S_ISLNK(st.st_mode)):
        os.chmod(path, mode)
    return changes


def _chown(path: Union[str, Path], uid: int, gid: int, *, follow: bool) -> None:
    try:
        if follow:
            os.chown(path, uid, gid)
        else:
            os.lchown(path, uid, gid)
    except PermissionError:
        raise TaskError(
            f"Cannot change the owner of {str(path)!r}: permission denied; run "
            "tenfra as root or drop 'owner'/'group'."
        ) from None


# -- content --------------------------------------------------------------------------


def read_bytes(path: Union[str, Path]) -> Optional[bytes]:
    """The content of a file, or None when it does not exist."""
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def same_content(path: Union[str, Path], data: bytes, st: os.stat_result) -> bool:
    """True when the file at ``path`` (stat ``st``) holds exactly ``data``.

    Costs one ``read`` only when the sizes match.
    """
    if st.st_size != len(data):
        return False
    with open(path, "rb") as handle:
        return handle.read() == data


def same_file_content(path: Union[str, Path], source: Union[str, Path]) -> bool:
    """True when two files hold the same bytes (sizes compared first)."""
    try:
        a = os.stat(path)
    except FileNotFoundError:
        return False
    b = os.stat(source)
    if a.st_size != b.st_size:
        return False
    with open(path, "rb") as one, open(source, "rb") as two:
        while True:
            x = one.read(1 << 20)
            y = two.read(1 << 20)
            if x != y:
                return False
            if not x:
                return True


def atomic_write(
    path: Union[str, Path],
    data: bytes,
    *,
    mode: Optional[int] = None,
    uid: int = -1,
    gid: int = -1,
) -> None:
    """Write ``data`` to ``path`` atomically: a temporary file in the same
    directory, fsync, mode and owner set, then rename over the target.

    Readers see the old or the new content, never a mix.  Without ``mode`` an
    existing file keeps its mode (and owner); a new file gets 0666 minus the
    umask.
    """
    target = Path(path)
    directory = target.parent
    try:
        current: Optional[os.stat_result] = os.stat(target)
    except FileNotFoundError:
        current = None
    try:
        fd, tmp = tempfile.mkstemp(
            dir=directory, prefix=f".{target.name}.", suffix=".tenfra-tmp"
        )
    except FileNotFoundError:
        raise TaskError(
            f"Cannot write {str(target)!r}: the directory {str(directory)!r} does "
            "not exist; create it first (the 'mkdir' resource)."
        ) from None
    except PermissionError:
        raise TaskError(
            f"Cannot write {str(target)!r}: permission denied in "
            f"{str(directory)!r}; run tenfra with enough rights."
        ) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
            if mode is None:
                mode = (
                    stat.S_IMODE(current.st_mode)
                    if current is not None
                    else new_file_mode()
                )
            if current is not None:
                uid = current.st_uid if uid == -1 else uid
                gid = current.st_gid if gid == -1 else gid
            if uid != -1 or gid != -1:
                try:
                    os.fchown(handle.fileno(), uid, gid)
                except PermissionError:
                    raise TaskError(
                        f"Cannot set the owner of {str(target)!r}: permission "
                        "denied; run tenfra as root or drop 'owner'/'group'."
                    ) from None
            os.fchmod(handle.fileno(), mode)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(directory)


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:  # some file systems refuse fsync on directories
        if exc.errno not in (errno.EINVAL, errno.EBADF):
            raise
    finally:
        os.close(fd)


# -- diffs ----------------------------------------------------------------------------


def _text(data: Optional[bytes]) -> Optional[list[str]]:
    if data is None:
        return []
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8").splitlines(keepends=True)
    except UnicodeDecodeError:
        return None


def unified_diff(
    old: Optional[bytes],
    new: Optional[bytes],
    path: str,
    *,
    sensitive: bool = False,
) -> Optional[str]:
    """A unified diff from ``old`` to ``new`` (None: the file is absent).

    Returns None when nothing differs.  With ``sensitive`` no content line is
    shown, only that the file changed.
    """
    if old == new:
        return None
    before = f"a{path}" if path.startswith("/") else f"a/{path}"
    after = f"b{path}" if path.startswith("/") else f"b/{path}"
    if old is None:
        before = "/dev/null"
    if new is None:
        after = "/dev/null"
    if sensitive:
        return f"--- {before}\n+++ {after}\n{HIDDEN}\n"
    old_lines = _text(old)
    new_lines = _text(new)
    if old_lines is None or new_lines is None:
        return f"Binary files {before} and {after} differ\n"
    import difflib

    lines = []
    for line in difflib.unified_diff(old_lines, new_lines, before, after):
        ending = "" if line.endswith("\n") else "\n\\ No newline at end of file\n"
        lines.append(line + ending)
    return "".join(lines)


# -- the shared "ensure this file holds this content" step ----------------------------


@attrs.frozen(kw_only=True)
class FileOutcome:
    """What :func:`ensure_content` found and did."""

    changed: bool
    created: bool
    diff: Optional[str]
    changes: list[str]  # short phrases: "content", "mode 0600 -> 0644", ...

    def message(self) -> Optional[str]:
        return ", ".join(self.changes) if self.changes else None


def ensure_content(
    path: Union[str, Path],
    data: bytes,
    meta: Metadata,
    *,
    check: bool,
    diff: bool,
    sensitive: bool,
) -> FileOutcome:
    """Make ``path`` a regular file holding ``data`` with ``meta``.

    A symlink is followed (its target is written).  Unchanged content and
    metadata cost one ``stat`` and, when the size matches, one read.
    """
    target = os.path.realpath(path) if os.path.islink(path) else str(path)
    try:
        st: Optional[os.stat_result] = os.stat(target)
    except FileNotFoundError:
        st = None
    except NotADirectoryError:
        raise TaskError(
            f"Cannot write {str(path)!r}: a part of its parent path is a file, "
            "not a directory."
        ) from None
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise TaskError(
            f"{str(path)!r} is a directory, not a file; remove it first (the 'rm' "
            "resource) or choose another destination."
        )

    content_changed = st is None or not same_content(target, data, st)
    changes = []
    if st is None:
        changes.append("created")
    elif content_changed:
        changes.append("content")
    if st is not None:
        changes.extend(metadata_changes(st, meta))
    else:
        meta.resolve()  # unknown owner or group: fail before writing anything
    diff_text = None
    if diff and content_changed:
        old = read_bytes(target) if st is not None else None
        diff_text = unified_diff(old, data, str(path), sensitive=sensitive)
    if not changes:
        return FileOutcome(changed=False, created=False, diff=None, changes=[])
    if not check:
        if content_changed:
            uid, gid = meta.resolve()
            mode = meta.target_mode(st.st_mode if st is not None else None)
            atomic_write(target, data, mode=mode, uid=uid, gid=gid)
        else:
            set_metadata(target, meta)
    return FileOutcome(
        changed=True, created=st is None, diff=diff_text, changes=changes
    )


# -- archives -------------------------------------------------------------------------


class _Entry:
    """One archive member, normalised: kind is file, dir, symlink or hardlink."""

    __slots__ = ("kind", "link", "member", "mode", "name")

    def __init__(self, name: str, kind: str, mode: int, link: str, member: Any) -> None:
        self.name = name
        self.kind = kind
        self.mode = mode
        self.link = link
        self.member = member


def _clean_name(raw: str, strip: int, archive: str) -> Optional[str]:
    name = raw.replace("\\", "/")
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        raise TaskError(
            f"The archive {archive!r} holds the absolute path {raw!r}; it was not "
            "extracted (a path must stay inside the target folder)."
        )
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise TaskError(
            f"The archive {archive!r} holds the path {raw!r} that climbs out with "
            "'..'; it was not extracted."
        )
    parts = parts[strip:]
    return "/".join(parts) if parts else None


def _check_links(entries: list[_Entry], root: Path, archive: str) -> None:
    """Refuse links that point out of ``root`` or paths that pass through links."""
    links = {e.name for e in entries if e.kind == "symlink"}
    files = {e.name for e in entries if e.kind == "file"}

    def through_link(path: str) -> bool:
        parts = path.split("/")
        for end in range(1, len(parts)):
            prefix = "/".join(parts[:end])
            if prefix in links or (root / prefix).is_symlink():
                return True
        return False

    for entry in entries:
        if through_link(entry.name):
            raise TaskError(
                f"The archive {archive!r} writes {entry.name!r} through a "
                "symbolic link; it was not extracted."
            )
        if entry.kind == "symlink":
            target = entry.link
            if target.startswith("/") or not target:
                raise TaskError(
                    f"The archive {archive!r} holds the link {entry.name!r} -> "
                    f"{target!r} that points outside the target folder; it was not "
                    "extracted."
                )
            stack: list[str] = entry.name.split("/")[:-1]
            for part in target.split("/"):
                if part in ("", "."):
                    continue
                if part == "..":
                    prefix = "/".join(stack)
                    if not stack or prefix in links or (root / prefix).is_symlink():
                        raise TaskError(
                            f"The archive {archive!r} holds the link "
                            f"{entry.name!r} -> {target!r} that points outside the "
                            "target folder; it was not extracted."
                        )
                    stack.pop()
                else:
                    stack.append(part)
        if entry.kind == "hardlink" and entry.link not in files:
            raise TaskError(
                f"The archive {archive!r} holds the hard link {entry.name!r} to "
                f"{entry.link!r}, which is not a file of the archive; it was not "
                "extracted."
            )


def _tar_entries(path: Path, strip: int, tar: Any) -> list[_Entry]:
    entries = []
    for member in tar.getmembers():
        name = _clean_name(member.name, strip, path.name)
        if name is None:
            continue
        if member.isdir():
            kind, link = "dir", ""
        elif member.isreg():
            kind, link = "file", ""
        elif member.issym():
            kind, link = "symlink", member.linkname
        elif member.islnk():
            kind = "hardlink"
            link = _clean_name(member.linkname, strip, path.name) or ""
        else:
            raise TaskError(
                f"The archive {path.name!r} holds {member.name!r}, a device or "
                "pipe; only files, folders and links are extracted."
            )
        entries.append(_Entry(name, kind, member.mode & 0o777, link, member))
    return entries


def _zip_entries(path: Path, strip: int, archive: Any) -> list[_Entry]:
    entries = []
    for info in archive.infolist():
        name = _clean_name(info.filename, strip, path.name)
        if name is None:
            continue
        unix = info.external_attr >> 16
        if info.is_dir():
            kind, link = "dir", ""
        elif stat.S_ISLNK(unix):
            kind = "symlink"
            link = archive.read(info).decode("utf-8", errors="replace")
        else:
            kind, link = "file", ""
        mode = stat.S_IMODE(unix) & 0o777 or (0o755 if kind == "dir" else 0o644)
        entries.append(_Entry(name, kind, mode, link, info))
    return entries


def check_archive(
    archive: Union[str, Path], root: Union[str, Path], *, strip: int = 0
) -> list[str]:
    """Raise TaskError unless :func:`safe_extract` would accept ``archive``.

    Returns the member names (after ``strip``) that would be written.
    """
    return [e.name for e in _open_archive(archive, root, strip, write=False)]


def safe_extract(
    archive: Union[str, Path], root: Union[str, Path], *, strip: int = 0
) -> list[str]:
    """Extract a tar (any compression) or zip archive into ``root``, safely.

    Every member is checked before anything is written: no absolute paths, no
    ``..``, no devices, no symbolic link that points out of ``root``, no
    member written through a link, hard links only to files of the archive.
    Owners are not restored and set-id bits are dropped.  Returns the names
    written, relative to ``root``.
    """
    return [e.name for e in _open_archive(archive, root, strip, write=True)]


def _open_archive(
    archive: Union[str, Path], root: Union[str, Path], strip: int, *, write: bool
) -> list[_Entry]:
    import tarfile
    import zipfile

    path = Path(archive)
    target = Path(root)
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            entries = _zip_entries(path, strip, zf)
            _check_links(entries, target, path.name)
            if write:
                _write_entries(entries, target, lambda e: zf.open(e.member))
        return entries
    if tarfile.is_tarfile(path):
        try:
            with tarfile.open(path) as tf:
                entries = _tar_entries(path, strip, tf)
                _check_links(entries, target, path.name)
                if write:
                    _write_entries(entries, target, lambda e: tf.extractfile(e.member))
        except tarfile.TarError as exc:
            raise TaskError(
                f"The archive {path.name!r} is damaged ({exc}); check the URL."
            ) from None
        return entries
    raise TaskError(
        f"{path.name!r} is neither a tar nor a zip archive; drop 'extract' or "
        "check the URL."
    )


def _write_entries(entries: list[_Entry], root: Path, opener: Any) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for entry in entries:
        dest = root / entry.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        if entry.kind == "dir":
            if dest.is_symlink():
                dest.unlink()
            dest.mkdir(exist_ok=True)
            os.chmod(dest, entry.mode | 0o700)
            continue
        if os.path.lexists(dest) and not dest.is_dir():
            dest.unlink()
        if entry.kind == "symlink":
            os.symlink(entry.link, dest)
        elif entry.kind == "hardlink":
            os.link(root / entry.link, dest)
        else:
            source = opener(entry)
            fd = os.open(
                dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600
            )
            with os.fdopen(fd, "wb") as handle, source:
                shutil.copyfileobj(source, handle)
            os.chmod(dest, entry.mode)
