"""Build the single-file agent: a zipapp that runs on any system python3 >= 3.9."""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipapp
from pathlib import Path
from typing import Optional

from tenfra import __version__
from tenfra.errors import UserError

logger = logging.getLogger(__name__)

# Pure-Python dependencies bundled into the zipapp (their own dependencies,
# such as exceptiongroup and typing_extensions on Python 3.9, come along).
# ``ecdsa`` verifies ed25519 signatures when the host has no ``cryptography``.
REQUIREMENTS = (
    "pluggy>=1.5",
    "attrs>=23.1",
    "cattrs>=23.2",
    "ruamel.yaml>=0.18",
    "jinja2>=3.1",
    "markupsafe>=2.1",
    "click>=8.1",
    "urllib3>=2.0",
    "fsspec>=2023.6",
    "ecdsa>=0.19",
)
MIN_PYTHON = "3.9"
ENV_CACHE = "TENFRA_ZIPAPP_CACHE"

MAIN = '''\
"""Entry point of the tenfra zipapp: ``python3 tenfra.pyz agent run``."""
import sys

if sys.version_info < (3, 9):
    sys.exit("tenfra needs Python 3.9 or newer; this is " + sys.version.split()[0])

from tenfra.cli import main

main()
'''

# Compiled files are dropped: the zipapp must run on any CPU and Python version.
_COMPILED = (".so", ".pyd", ".dylib", ".pyc", ".pyo")


def build_zipapp(
    out_path: os.PathLike[str] | str,
    *,
    cache_dir: Optional[Path] = None,
    python_version: str = MIN_PYTHON,
) -> Path:
    """Write the agent zipapp to ``out_path`` and return its path.

    The pure-Python dependencies are installed once per requirement set into a
    cache (``$TENFRA_ZIPAPP_CACHE`` or ``~/.cache/tenfra/zipapp``) with
    ``uv pip`` or ``pip``, resolved for ``python_version`` so that the file
    runs on the oldest supported Python.  tenfra itself is copied from the
    running installation, with its metadata and entry points, so the zipapp
    loads the same built-in plugins.
    """
    out = Path(out_path)
    deps = _dependencies(cache_dir, python_version)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tenfra-zipapp-") as tmp:
        root = Path(tmp) / "app"
        shutil.copytree(deps, root, ignore=_ignore_compiled)
        _copy_tenfra(root)
        (root / "__main__.py").write_text(MAIN, encoding="utf-8")
        partial = out.with_name(f".{out.name}.tmp")
        zipapp.create_archive(
            root, partial, interpreter="/usr/bin/env python3", compressed=True
        )
        os.chmod(partial, 0o755)  # noqa: S103 (an executable program)
        os.replace(partial, out)
    logger.info("wrote %s (%d bytes)", out, out.stat().st_size)
    return out


def _ignore_compiled(_folder: str, names: list[str]) -> set[str]:
    return {n for n in names if n.endswith(_COMPILED) or n in ("__pycache__", "bin")}


def _cache_root(cache_dir: Optional[Path]) -> Path:
    if cache_dir is not None:
        return cache_dir
    env = os.environ.get(ENV_CACHE)
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tenfra" / "zipapp"


def _dependencies(cache_dir: Optional[Path], python_version: str) -> Path:
    """A folder holding the installed pure-Python dependencies (cached)."""
    key = hashlib.sha256(
        "\n".join((python_version, *REQUIREMENTS)).encode("utf-8")
    ).hexdigest()[:16]
    root = _cache_root(cache_dir)
    target = root / f"py{python_version}-{key}"
    if (target / ".complete").is_file():
        return target
    root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".deps-", dir=root))
    try:
        _install(work, python_version)
        for path in list(work.rglob("*")):
            if path.is_file() and path.name.endswith(_COMPILED):
                path.unlink()
        (work / ".complete").write_text("ok\n", encoding="utf-8")
        try:
            os.rename(work, target)
        except OSError:  # another build finished first
            if not (target / ".complete").is_file():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def _install(target: Path, python_version: str) -> None:
    uv = shutil.which("uv") or _beside_python("uv")
    if uv:
        argv = [
            uv,
            "pip",
            "install",
            "--quiet",
            "--target",
            str(target),
            "--python",
            sys.executable,
            "--python-version",
            python_version,
            "--python-platform",
            "x86_64-manylinux_2_17",
            "--only-binary",
            ":all:",
            *REQUIREMENTS,
        ]
    else:
        argv = [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--target",
            str(target),
            "--python-version",
            python_version,
            "--implementation",
            "cp",
            "--platform",
            "manylinux2014_x86_64",
            "--only-binary=:all:",
            *REQUIREMENTS,
        ]
    logger.info("installing the zipapp's dependencies: %s", " ".join(argv))
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise UserError(
            "Cannot install the agent's dependencies for the zipapp ("
            + " | ".join(detail)
            + "). Check that PyPI (or your pip index) is reachable, or point "
            f"{ENV_CACHE} at a folder filled by an earlier build."
        )


def _beside_python(name: str) -> Optional[str]:
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.is_file() else None


def _copy_tenfra(root: Path) -> None:
    """Copy the running tenfra package and its metadata into ``root``."""
    import tenfra

    package = root / "tenfra"
    # The package may be mapped from several folders (core/, plugins/, agent/...).
    shutil.copytree(
        Path(tenfra.__file__).parent,
        package,
        ignore=_ignore_sources,
        dirs_exist_ok=True,
    )
    for sub in ("plugins", "provider", "agent"):
        module = _import(f"tenfra.{sub}")
        if module is None:
            continue
        source = Path(module).parent
        if source != package / sub:
            shutil.copytree(
                source, package / sub, ignore=_ignore_sources, dirs_exist_ok=True
            )
    _write_metadata(root)


def _import(name: str) -> Optional[str]:
    import importlib

    try:
        module = importlib.import_module(name)
    except ImportError:
        return None
    return getattr(module, "__file__", None)


def _ignore_sources(_folder: str, names: list[str]) -> set[str]:
    return {
        n
        for n in names
        if n.endswith(_COMPILED) or n in ("__pycache__", "tests", "build")
    }


def _write_metadata(root: Path) -> None:
    """A dist-info for tenfra so importlib.metadata finds its entry points."""
    try:
        dist = importlib.metadata.distribution("tenfra")
        entry_points = dist.read_text("entry_points.txt") or ""
        version = dist.version
    except importlib.metadata.PackageNotFoundError:
        entry_points, version = "", __version__
    if "[tenfra]" not in entry_points:
        raise UserError(
            "The running tenfra installation has no plugin entry points, so the "
            "zipapp would load no resource types; reinstall tenfra (pip install "
            "-e . or the wheel) and build again."
        )
    dist_info = root / f"tenfra-{version}.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: tenfra\nVersion: {version}\n"
        f"Requires-Python: >={MIN_PYTHON}\n",
        encoding="utf-8",
    )
    (dist_info / "entry_points.txt").write_text(entry_points, encoding="utf-8")
    (dist_info / "top_level.txt").write_text("tenfra\n", encoding="utf-8")
