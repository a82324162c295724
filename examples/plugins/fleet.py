"""Site plugin of the example fleet: container and init facts, an SSH key filter.

Site plugins live in ``plugins/`` beside ``recipes/``. ``tenfra run`` and
``tenfra test`` load them from here; ``tenfra compile`` signs them into the
release, and agents load them from the verified release only.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import struct
from pathlib import Path
from typing import Any, Union

from tenfra import hookimpl

logger = logging.getLogger(__name__)

KEY_TYPES = (
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
)


def container() -> str:
    """The container engine this host runs in (``podman``, ``docker``...), or ""."""
    if Path("/run/.containerenv").exists():
        return "podman"
    if Path("/.dockerenv").exists():
        return "docker"
    try:
        environ = Path("/proc/1/environ").read_bytes().split(b"\0")
    except OSError:
        environ = []
    for item in environ:
        if item.startswith(b"container="):
            return item.split(b"=", 1)[1].decode("ascii", "replace") or "container"
    return ""


def init_system() -> str:
    """``systemd`` when systemd runs as init, otherwise ``other``."""
    return "systemd" if os.path.isdir("/run/systemd/system") else "other"


def _one_key(entry: Union[str, dict[str, Any]], index: int) -> str:
    if isinstance(entry, dict):
        unknown = set(entry) - {"key", "options", "comment"}
        if unknown or "key" not in entry:
            raise ValueError(
                f"key #{index + 1} is a mapping with keys {sorted(entry)}; give "
                "'key' (and optionally 'options', 'comment')"
            )
        text = str(entry["key"]).strip()
        options = entry.get("options")
        comment = entry.get("comment")
    else:
        text, options, comment = str(entry).strip(), None, None
    fields = text.split()
    if len(fields) < 2 or fields[0] not in KEY_TYPES:
        shown = text[:40] + ("..." if len(text) > 40 else "")
        raise ValueError(
            f"key #{index + 1} ({shown!r}) does not start with a key type such as "
            "'ssh-ed25519 AAAA...'; paste the whole line of the .pub file"
        )
    try:
        blob = base64.b64decode(fields[1], validate=True)
        (size,) = struct.unpack(">I", blob[:4])
        embedded = blob[4 : 4 + size].decode("ascii")
    except (binascii.Error, struct.error, UnicodeDecodeError):
        embedded = ""
    if embedded != fields[0]:
        raise ValueError(
            f"key #{index + 1} ({fields[0]} {fields[1][:12]}...) has a damaged "
            "base64 part; copy it again from the .pub file"
        )
    words = fields[:2] + ([str(comment)] if comment else fields[2:])
    line = " ".join(words)
    return f"{options} {line}" if options else line


def authorized_keys(keys: Any) -> str:
    """Render a list of SSH public keys as the text of an authorized_keys file.

    Each item is a key line (``ssh-ed25519 AAAA... comment``) or a mapping with
    ``key``, ``options`` (``from="10.0.0.0/8"``) and ``comment``; every key is
    checked, so a damaged key fails the task instead of locking a user out.
    """
    if keys is None:
        return ""
    if isinstance(keys, (str, dict)):
        keys = [keys]
    if not isinstance(keys, (list, tuple)):
        raise ValueError(
            f"authorized_keys needs a list of keys, not {type(keys).__name__}"
        )
    return "".join(_one_key(entry, i) + "\n" for i, entry in enumerate(keys))


@hookimpl
def tenfra_add_facts(registry: Any) -> None:
    registry.add_fact("container", container)
    registry.add_fact("init_system", init_system)


@hookimpl
def tenfra_add_template_filters(registry: Any) -> None:
    registry.add_template_filter("authorized_keys", authorized_keys)
