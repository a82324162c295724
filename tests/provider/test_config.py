"""provider.yaml: defaults, and a located, actionable error for every bad value."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from tenfra.errors import ConfigError, ValidationError
from tenfra.provider.config import ProviderConfig

GOOD = """\
database:
  url: sqlite:///tmp/p.db
releases:
  url: s3://bucket/releases
  storageOptions: {endpoint_url: "http://127.0.0.1:9000"}
  scanInterval: 30s
auth:
  secretKey: 0123456789abcdef0123
  tokenTtl: 2d
rollout:
  rings:
    - {name: canary, hosts: [web-1]}
    - {name: web, hosts: ["web-[2:9]", "~^api"]}
  failureThreshold: 0.1
retention:
  runs: 14d
  logs: 1h30m
limits:
  maxBody: 2MiB
hooks:
  - type: webhook
    url: http://127.0.0.1:9/x
publicUrl: https://provider.example/
"""


def test_a_complete_configuration(tmp_path: Path) -> None:
    path = tmp_path / "provider.yaml"
    path.write_text(GOOD)
    config = ProviderConfig.from_file(path)
    assert config.releases.scan_interval == 30
    assert config.auth.token_ttl == 2 * 86400
    assert config.retention.logs == 5400
    assert config.limits.max_body == 2 * 1024 * 1024
    assert config.assets_url == "s3://bucket/releases/assets"
    assert config.public_url == "https://provider.example"
    assert [h.name for h in config.hooks] == ["webhook-1"]
    assert config.rollout.rings[1].hosts == ["web-[2:9]", "~^api"]


def test_defaults() -> None:
    config = ProviderConfig.from_text("releases: {url: /srv/releases}\n")
    assert config.database.url == "sqlite:///tenfra-provider.db"
    assert config.retention.runs == 30 * 86400
    assert config.rollout.rings == []
    with pytest.raises(ConfigError, match=r"auth\.secretKey is not set"):
        config.secret_key  # noqa: B018


CASES = [
    ("releases: {url: x}\nrelease: {}\n", "2:1", "unknown key 'release'"),
    ("database: {url: mysql://x}\nreleases: {url: x}\n", "1:17", "is not supported"),
    ("releases: {url: x, scanInterval: soon}\n", "1:34", "'soon' is not a duration"),
    ("releases: {url: x, scanInterval: 0}\n", "1:34", "at least 1s"),
    ("releases: {url: x, publicKey: /nope.pub}\n", "1:31", "does not exist"),
    ("database: {}\n", None, "releases is required"),
    (
        "releases: {url: x}\nauth: {secretKey: short}\n",
        "2:19",
        "auth.secretKey is too short",
    ),
    (
        "releases: {url: x}\nauth: {users: [{name: a, passwordHash: plain}]}\n",
        "2:40",
        "not a scrypt hash",
    ),
    (
        "releases: {url: x}\nrollout: {failureThreshold: 2}\n",
        "2:29",
        "between 0 and 1",
    ),
    (
        "releases: {url: x}\nrollout: {rings: [{name: a, hosts: ['web-[3:1]']}]}\n",
        "2:36",
        "range [3:1] is empty",
    ),
    (
        "releases: {url: x}\nrollout: {rings: [{name: a, hosts: web}]}\n",
        "2:36",
        "expected a list",
    ),
    ("releases: {url: x}\nlimits: {maxBody: lots}\n", "2:19", "expected a size"),
    ("releases: {url: x}\nredact: ['(']\n", "2:10", "not a valid regex"),
    ("releases: {url: x}\nserver: {bind: '127.0.0.1:99999'}\n", "2:16", "0 to 65535"),
    ("releases: {url: x}\nserver: {bind: 127.0.0.1}\n", "2:16", "not HOST:PORT"),
    ("releases: {url: x}\npublicUrl: ftp://x\n", "2:12", "must start with http"),
    (
        "releases: {url: x}\nhooks:\n  - type: webhook\n"
        "    url: http://x\n    tries: 3\n",
        "5:5",
        "unknown key 'tries'",
    ),
    (
        "releases: {url: x}\n"
        "hooks:\n  - {type: webhook, url: 'http://x', timeout: fast}\n",
        "3:47",
        "expected a number",
    ),
]


@pytest.mark.parametrize(("text", "where", "message"), CASES)
def test_bad_values_are_located(text: str, where: Any, message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        ProviderConfig.from_text(text, "provider.yaml")
    error = str(caught.value)
    assert message in error
    if where is not None:
        assert error.startswith(f"provider.yaml:{where}:"), error


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        ProviderConfig.from_file("/nonexistent/provider.yaml")


def test_yaml_syntax_errors_are_located() -> None:
    with pytest.raises(Exception, match=r"provider\.yaml:3:1: not valid YAML"):
        ProviderConfig.from_text(textwrap.dedent("releases:\n  url: [x\n"))
