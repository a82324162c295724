"""Facts about the host.

OS, distribution, architecture, hostname, CPUs, memory, Python, addresses.
Everything is read from ``/etc/os-release``, ``/proc``, :mod:`platform`,
:mod:`os` and :mod:`socket`; no command is started.
"""

from __future__ import annotations

import functools
import logging
import os
import platform
import socket
import sys
from pathlib import Path
from typing import Any, Callable, Optional

from tenfra import hookimpl
from tenfra.pluginmanager import Registry

logger = logging.getLogger(__name__)

OS_RELEASE_PATHS = ("/etc/os-release", "/usr/lib/os-release")

# Distribution ids (and ID_LIKE words) to the family package backends key on.
FAMILIES = {
    "debian": "debian",
    "ubuntu": "debian",
    "raspbian": "debian",
    "linuxmint": "debian",
    "rhel": "redhat",
    "fedora": "redhat",
    "centos": "redhat",
    "rocky": "redhat",
    "almalinux": "redhat",
    "ol": "redhat",
    "amzn": "redhat",
    "alpine": "alpine",
    "arch": "archlinux",
    "manjaro": "archlinux",
    "opensuse": "suse",
    "sles": "suse",
    "suse": "suse",
    "gentoo": "gentoo",
}


def parse_os_release(text: str) -> dict[str, str]:
    """``KEY=value`` lines of os-release(5), with quotes and escapes removed."""
    import shlex

    values: dict[str, str] = {}
    for raw_line in text.splitlines():
        line = raw_line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, raw = line.partition("=")
        try:
            parts = shlex.split(raw)
        except ValueError:
            parts = [raw.strip("\"'")]
        values[key.strip()] = parts[0] if parts else ""
    return values


def os_release(paths: tuple[str, ...] = OS_RELEASE_PATHS) -> dict[str, str]:
    """The first readable os-release file, parsed (empty when there is none)."""
    for path in paths:
        try:
            return parse_os_release(Path(path).read_text(encoding="utf-8"))
        except OSError:
            continue
    return {}


def family_of(release: dict[str, str], system: Optional[str] = None) -> str:
    """The OS family: debian, redhat, alpine, archlinux, suse, ..., or the system."""
    system = system or platform.system()
    if system != "Linux":
        return system.lower()
    words = [release.get("ID", ""), *release.get("ID_LIKE", "").split()]
    for word in words:
        family = FAMILIES.get(word.lower())
        if family:
            return family
    return release.get("ID", "") or "linux"


@functools.lru_cache(maxsize=1)
def _this_os_release() -> dict[str, str]:
    return os_release()


def os_family() -> str:
    return family_of(_this_os_release())


def distribution() -> str:
    return _this_os_release().get("ID", "") or platform.system().lower()


def distribution_version() -> str:
    return _this_os_release().get("VERSION_ID", "") or platform.release()


def distribution_codename() -> str:
    return _this_os_release().get("VERSION_CODENAME", "")


def architecture() -> str:
    """The machine architecture with common aliases unified (amd64 -> x86_64)."""
    machine = platform.machine().lower()
    return {"amd64": "x86_64", "arm64": "aarch64", "i686": "i386"}.get(machine, machine)


def hostname() -> str:
    return socket.gethostname().split(".")[0]


def fqdn() -> str:
    return socket.getfqdn()


def cpu_count() -> int:
    """CPUs this process may use (affinity), else every CPU, else 1."""
    sched = getattr(os, "sched_getaffinity", None)
    if sched is not None:
        try:
            return len(sched(0))
        except OSError:
            pass
    return os.cpu_count() or 1


def memory_mb(meminfo: str = "/proc/meminfo") -> int:
    """Total memory in MiB, from /proc/meminfo or sysconf."""
    try:
        for line in Path(meminfo).read_text(encoding="ascii").splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        pass
    pages = os.sysconf("SC_PHYS_PAGES")
    size = os.sysconf("SC_PAGE_SIZE")
    return int(pages * size // (1024 * 1024))


def python_version() -> str:
    return platform.python_version()


def python_executable() -> str:
    return sys.executable


def kernel() -> str:
    return platform.release()


def addresses() -> dict[str, list[str]]:
    """Non-loopback addresses: ``{"ipv4": [...], "ipv6": [...]}``, sorted."""
    return {"ipv4": sorted(_ipv4_addresses()), "ipv6": sorted(_ipv6_addresses())}


def interfaces() -> dict[str, dict[str, list[str]]]:
    """Addresses per interface name (loopback included)."""
    found: dict[str, dict[str, list[str]]] = {}
    for name, address in _ipv4_by_interface():
        found.setdefault(name, {"ipv4": [], "ipv6": []})["ipv4"].append(address)
    for name, address in _ipv6_by_interface():
        found.setdefault(name, {"ipv4": [], "ipv6": []})["ipv6"].append(address)
    return found


def _ipv4_addresses() -> set[str]:
    return {a for _n, a in _ipv4_by_interface() if not a.startswith("127.")}


def _ipv6_addresses() -> set[str]:
    return {a for _n, a in _ipv6_by_interface() if a != "::1"}


def _ipv4_by_interface() -> list[tuple[str, str]]:
    """(interface, address) pairs through the SIOCGIFADDR ioctl (Linux)."""
    try:
        import fcntl
        import struct
    except ImportError:  # pragma: no cover - not Linux
        return []
    siocgifaddr = 0x8915
    pairs: list[tuple[str, str]] = []
    try:
        names = [name for _index, name in socket.if_nameindex()]
    except OSError:
        return pairs
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for name in names:
            request = struct.pack("256s", name.encode()[:15])
            try:
                answer = fcntl.ioctl(sock.fileno(), siocgifaddr, request)
            except OSError:
                continue  # no IPv4 address on this interface
            pairs.append((name, socket.inet_ntoa(answer[20:24])))
    return pairs


def _ipv6_by_interface(path: str = "/proc/net/if_inet6") -> list[tuple[str, str]]:
    """(interface, address) pairs from /proc/net/if_inet6 (Linux)."""
    pairs: list[tuple[str, str]] = []
    try:
        text = Path(path).read_text(encoding="ascii")
    except OSError:
        return pairs
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 6 or len(fields[0]) != 32:
            continue
        packed = bytes.fromhex(fields[0])
        pairs.append((fields[5], socket.inet_ntop(socket.AF_INET6, packed)))
    return pairs


FACTS: dict[str, Callable[[], Any]] = {
    "os_family": os_family,
    "distribution": distribution,
    "distribution_version": distribution_version,
    "distribution_codename": distribution_codename,
    "architecture": architecture,
    "hostname": hostname,
    "fqdn": fqdn,
    "cpu_count": cpu_count,
    "memory_mb": memory_mb,
    "python_version": python_version,
    "python_executable": python_executable,
    "kernel": kernel,
    "addresses": addresses,
    "interfaces": interfaces,
}


@hookimpl
def tenfra_add_facts(registry: Registry[Any]) -> None:
    for name, function in FACTS.items():
        registry.add_fact(name, function)
