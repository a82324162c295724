"""Facts: the lazy mapping, and the built-in fact functions on this real machine."""

from __future__ import annotations

import logging
import os
import platform
import socket
import sys
from pathlib import Path
from typing import Any, Callable

import jinja2
import pytest

from tenfra.factsmod import Facts
from tenfra.plugins import facts as plugin

DEBIAN = """\
PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
"""
UBUNTU = 'NAME="Ubuntu"\nID=ubuntu\nID_LIKE=debian\nVERSION_ID="22.04"\n'
ROCKY = 'ID="rocky"\nID_LIKE="rhel centos fedora"\nVERSION_ID="9.3"\n'
ALPINE = "ID=alpine\nVERSION_ID=3.19.1\n"
UNKNOWN = "# a comment\nID=plan9\nbroken line\n"


def _counting(values: dict[str, Any]) -> tuple[dict[str, Callable[[], Any]], list[str]]:
    calls: list[str] = []

    def make(name: str, value: Any) -> Callable[[], Any]:
        def function() -> Any:
            calls.append(name)
            return value

        return function

    return {name: make(name, value) for name, value in values.items()}, calls


def test_facts_are_gathered_lazily_and_once() -> None:
    functions, calls = _counting({"a": 1, "b": 2})
    facts = Facts(functions)

    assert calls == []
    assert facts["a"] == 1
    assert facts["a"] == 1
    assert calls == ["a"]
    assert facts.gathered() == {"a": 1}
    assert facts.gather_all() == {"a": 1, "b": 2}
    assert calls == ["a", "b"]
    assert sorted(facts) == ["a", "b"]
    assert len(facts) == 2


def test_templates_read_facts_lazily() -> None:
    functions, calls = _counting({"os_family": "debian", "memory_mb": 512})
    facts = Facts(functions)
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)

    text = env.from_string("{{ facts.os_family }}/{{ facts['os_family'] }}").render(
        facts=facts
    )
    assert text == "debian/debian"
    assert calls == ["os_family"]
    with pytest.raises(jinja2.UndefinedError):
        env.from_string("{{ facts.nope }}").render(facts=facts)


def test_failing_fact_is_null_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    def broken() -> Any:
        raise OSError("no /proc here")

    facts = Facts({"broken": broken, "fine": lambda: 1})
    with caplog.at_level(logging.WARNING, logger="tenfra.factsmod"):
        assert facts.gather_all() == {"broken": None, "fine": 1}
    assert "fact 'broken' could not be gathered (OSError: no /proc here)" in caplog.text


def test_overrides_and_unknown_names() -> None:
    functions, calls = _counting({"hostname": "real"})
    facts = Facts(functions, overrides={"hostname": "fixed", "extra": 1})
    assert facts["hostname"] == "fixed"
    assert facts["extra"] == 1
    assert calls == []
    assert "hostname" in facts and "nope" not in facts
    with pytest.raises(KeyError):
        facts["nope"]
    with pytest.raises(AttributeError):
        _ = facts._private


def test_default_facts_come_from_the_registry() -> None:
    from tenfra.pluginmanager import PluginInfo, PluginManager

    manager = PluginManager(load_entry_points=False)
    manager.register(
        plugin,
        PluginInfo(
            name="facts",
            version="test",
            origin="builtin",
            distribution="tenfra",
            entry_point=None,
            module=plugin.__name__,
        ),
    )
    registry = manager.facts
    names = set(registry)
    assert {
        "os_family",
        "distribution",
        "distribution_version",
        "architecture",
        "hostname",
        "fqdn",
        "cpu_count",
        "memory_mb",
        "python_version",
        "addresses",
    } <= names
    facts = Facts({name: registry[name] for name in registry})
    gathered = facts.gather_all()
    assert None not in gathered.values()


# -- the fact functions ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "family", "distribution", "version"),
    [
        (DEBIAN, "debian", "debian", "12"),
        (UBUNTU, "debian", "ubuntu", "22.04"),
        (ROCKY, "redhat", "rocky", "9.3"),
        (ALPINE, "alpine", "alpine", "3.19.1"),
        (UNKNOWN, "plan9", "plan9", ""),
    ],
)
def test_os_release_parsing(
    text: str, family: str, distribution: str, version: str, tmp_path: Path
) -> None:
    path = tmp_path / "os-release"
    path.write_text(text)
    release = plugin.os_release((str(tmp_path / "missing"), str(path)))

    assert release.get("ID") == distribution
    assert release.get("VERSION_ID", "") == version
    assert plugin.family_of(release, "Linux") == family


def test_os_release_quotes_and_no_file(tmp_path: Path) -> None:
    assert plugin.parse_os_release('PRETTY_NAME="A \\"quoted\\" name"\n') == {
        "PRETTY_NAME": 'A "quoted" name'
    }
    assert plugin.os_release((str(tmp_path / "none"),)) == {}
    assert plugin.family_of({}, "Darwin") == "darwin"
    assert plugin.family_of({}, "Linux") == "linux"


def test_this_machine_distribution_matches_os_release() -> None:
    release = plugin.os_release()
    assert release, "this machine has /etc/os-release"
    assert plugin.distribution() == release["ID"]
    assert plugin.distribution_version() == release.get("VERSION_ID", "")
    assert plugin.os_family() == plugin.family_of(release)


def test_this_machine_basics() -> None:
    assert plugin.hostname() == socket.gethostname().split(".")[0]
    assert plugin.python_version() == platform.python_version()
    assert plugin.python_executable() == sys.executable
    assert 1 <= plugin.cpu_count() <= (os.cpu_count() or 1)
    assert plugin.architecture() in ("x86_64", "aarch64", platform.machine().lower())


def test_memory_from_meminfo_and_sysconf(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:        2048000 kB\nMemFree: 1 kB\n")
    assert plugin.memory_mb(str(meminfo)) == 2000
    expected = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2**20
    assert plugin.memory_mb(str(tmp_path / "missing")) == expected
    assert abs(plugin.memory_mb() - expected) <= 1


def test_addresses_of_this_machine() -> None:
    found = plugin.addresses()
    assert set(found) == {"ipv4", "ipv6"}
    assert "127.0.0.1" not in found["ipv4"]
    for address in found["ipv4"]:
        socket.inet_pton(socket.AF_INET, address)
    for address in found["ipv6"]:
        socket.inet_pton(socket.AF_INET6, address)
    interfaces = plugin.interfaces()
    assert "127.0.0.1" in interfaces["lo"]["ipv4"]
    # every address reported is bound to a real interface: binding to it works
    for address in found["ipv4"]:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind((address, 0))


def test_ipv6_parsing(tmp_path: Path) -> None:
    sample = tmp_path / "if_inet6"
    sample.write_text(
        "00000000000000000000000000000001 01 80 10 80       lo\n"
        "fe800000000000000000000000000001 02 40 20 80     eth0\n"
    )
    assert plugin._ipv6_by_interface(str(sample)) == [
        ("lo", "::1"),
        ("eth0", "fe80::1"),
    ]
