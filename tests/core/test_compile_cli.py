"""``tenfra keygen``, ``tenfra compile`` and ``tenfra diff`` as a user runs them."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Optional

import pytest

from tenfra import release
from tenfra.errors import EXIT_FAILED, EXIT_USER
from tenfra.pluginmanager import reset_plugin_manager

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
EPOCH = "1893456000"  # 2030-01-01T00:00:00Z

REPO: dict[str, Any] = {
    "inventory.yaml": {
        "hosts": {"web-01": {"vars": {"canary": "CLI-CANARY"}}, "db-01": None},
        "groups": {"web": "web-*"},
    },
    "recipes/web/main.yaml": (
        "name: web\ntargets: web\ntasks:\n"
        "  - template: src=site.conf.j2 dest=/tmp/site.conf\n"
    ),
    "recipes/web/assets/site.conf.j2": "listen 80;\n",
    "recipes/db/main.yaml": "name: db\ntargets: db-01\ntasks:\n  - exec: cmd=true\n",
}


@pytest.fixture(autouse=True)
def fresh_plugins() -> Iterator[None]:
    reset_plugin_manager()
    yield
    reset_plugin_manager()


def tenfra(
    *args: str, cwd: Path, env: Optional[Mapping[str, str]] = None
) -> subprocess.CompletedProcess[str]:
    environment = dict(os.environ)
    environment.pop("TENFRA_SIGNING_KEY", None)
    environment["SOURCE_DATE_EPOCH"] = EPOCH
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "tenfra.cli", *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("tenfra:")]
    assert len(lines) == 1, done.stderr
    return lines[0]


@pytest.fixture
def repo(tenfra_repo: Callable[[Mapping[str, Any]], Path]) -> Path:
    root = tenfra_repo(REPO)
    done = tenfra("keygen", cwd=root)
    assert done.returncode == 0, done.stderr
    return root


def test_keygen(tmp_path: Path) -> None:
    done = tenfra("keygen", "--out", "keys/ci.pem", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    private, public = tmp_path / "keys/ci.pem", tmp_path / "keys/ci.pub"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    key = release.load_private_key(private)
    assert release.key_id(release.load_public_key(public)) == release.key_id(key)
    assert release.key_id(key) in done.stdout
    assert sorted(p.name for p in (tmp_path / "keys").iterdir()) == [
        "ci.pem",
        "ci.pub",
    ]

    again = tenfra("keygen", "--out", "keys/ci.pem", cwd=tmp_path)
    assert again.returncode == EXIT_USER
    assert "already exists" in one_error_line(again)
    assert release.key_id(release.load_private_key(private)) == release.key_id(key)
    forced = tenfra("keygen", "--out", "keys/ci.pem", "--force", cwd=tmp_path)
    assert forced.returncode == 0
    assert release.key_id(release.load_private_key(private)) != release.key_id(key)


def test_compile_then_unchanged_then_diff(repo: Path) -> None:
    done = tenfra(
        "compile", "--out", "out", "--signing-key", "tenfra-signing.key", cwd=repo
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Release 0000000001-")
    assert "2 hosts, 2 recipes, 1 assets (1 new), signed with key" in done.stdout

    again = tenfra(
        "compile",
        "--out",
        "out",
        "--json",
        cwd=repo,
        env={"TENFRA_SIGNING_KEY": "tenfra-signing.key"},
    )
    assert again.returncode == 0, again.stderr
    result = json.loads(again.stdout)
    assert result["unchanged"] is True and result["sequence"] == 1

    (repo / "recipes/web/assets/site.conf.j2").write_text("listen 8080;\n")
    changed = tenfra(
        "compile", "--out", "out", "--signing-key", "tenfra-signing.key", cwd=repo
    )
    assert changed.stdout.startswith("Release 0000000002-"), changed.stderr

    diff = tenfra(
        "diff", "out#1", "out", "--public-key", "tenfra-signing.pub", cwd=repo
    )
    assert diff.returncode == 0, diff.stderr
    assert "web-01: changed\n  recipe web: asset site.conf.j2 changed" in diff.stdout
    assert "db-01" not in diff.stdout
    assert "1 hosts change, 1 unchanged." in diff.stdout
    assert "CLI-CANARY" not in diff.stdout  # values are never shown

    as_json = tenfra("diff", "out#1", "out", "--json", "--exit-code", cwd=repo)
    assert as_json.returncode == EXIT_FAILED
    report = json.loads(as_json.stdout)
    assert [h["host"] for h in report["hosts"]] == ["web-01"]
    assert report["hosts"][0]["recipes"] == {"web": ["asset site.conf.j2 changed"]}

    same = tenfra("diff", "out", "out", "--exit-code", "--host", "db-01", cwd=repo)
    assert same.returncode == 0
    assert "db-01: unchanged" in same.stdout


def test_diff_refuses_a_tampered_release(repo: Path) -> None:
    done = tenfra(
        "compile", "-o", "out", "--signing-key", "tenfra-signing.key", cwd=repo
    )
    assert done.returncode == 0, done.stderr
    bundle = next((repo / "out/releases").glob("*/hosts/web-01.json"))
    bundle.write_bytes(bundle.read_bytes().replace(b"CLI-CANARY", b"CLI-CANARZ"))
    diff = tenfra("diff", "out", "out", "--public-key", "tenfra-signing.pub", cwd=repo)
    assert diff.returncode == 4
    assert "does not match the digest in the manifest" in one_error_line(diff)


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        ((), EXIT_USER, "No signing key: pass --signing-key FILE"),
        (("--signing-key", "absent.pem"), EXIT_USER, "Cannot read the signing key"),
        (
            ("--unsigned", "--signing-key", "tenfra-signing.key"),
            EXIT_USER,
            "contradict each other",
        ),
        (("--unsigned", "--valid-for", "soon"), EXIT_USER, "is not a duration"),
        (("--unsigned", "--created", "yesterday"), EXIT_USER, "is not a time"),
        (("--unsigned", "--recipes", "nowhere"), EXIT_USER, "nowhere: the recipes"),
        (("--unsigned", "-i", "absent.yaml"), EXIT_USER, "absent.yaml: inventory"),
    ],
)
def test_compile_usage_errors(
    repo: Path, args: tuple[str, ...], code: int, message: str
) -> None:
    done = tenfra("compile", "--out", "out", *args, cwd=repo)
    assert done.returncode == code, done.stderr
    assert message in one_error_line(done)
    assert not (repo / "out").exists()


def test_sequence_longer_than_ten_digits_is_refused(repo: Path) -> None:
    # Release folder names hold ten digits: a longer one would break the store.
    done = tenfra(
        "compile", "--out", "out", "--unsigned", "--sequence", "99999999999", cwd=repo
    )
    assert done.returncode == EXIT_USER
    assert "99999999999 is not in the range 1<=x<=9999999999" in done.stderr
    assert not (repo / "out").exists()


def test_unsigned_compile_warns(repo: Path) -> None:
    done = tenfra(
        "compile",
        "--out",
        "out",
        "--unsigned",
        "--created",
        "2031-02-03T04:05:06Z",
        "--valid-for",
        "2d",
        "--sequence",
        "5",
        cwd=repo,
    )
    assert done.returncode == 0, done.stderr
    assert "UNSIGNED" in done.stdout
    assert "agents refuse it unless" in done.stderr
    manifest = release.open_release(str(repo / "out")).manifest
    assert manifest["sequence"] == 5
    assert manifest["created"] == "2031-02-03T04:05:06Z"
    assert manifest["expires"] == "2031-02-05T04:05:06Z"


def test_progress_on_standard_error(repo: Path) -> None:
    done = tenfra(
        "compile", "-o", "out", "--unsigned", "--progress-every", "1", cwd=repo
    )
    assert done.returncode == 0, done.stderr
    assert "compile: hashed 1/2 hosts" in done.stderr
    assert "compile: written 2/2 hosts" in done.stderr


def test_examples_compile_to_a_folder(tmp_path: Path) -> None:
    shutil.copytree(EXAMPLES, tmp_path / "examples")
    done = tenfra("keygen", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = tmp_path / "releases"
    done = tenfra(
        "compile",
        "--out",
        str(out),
        "--signing-key",
        str(tmp_path / "tenfra-signing.key"),
        cwd=tmp_path / "examples",
    )
    assert done.returncode == 0, done.stderr
    opened = release.open_release(str(out))
    public = release.load_public_key(tmp_path / "tenfra-signing.pub")
    from tenfra.compiler import verify_release

    verify_release(opened, public)
    assert "web-01" in opened.hosts


@pytest.mark.integration
def test_examples_compile_to_s3(
    tmp_path: Path, s3_endpoint: str, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(EXAMPLES, tmp_path / "examples")
    assert tenfra("keygen", cwd=tmp_path).returncode == 0
    url = f"s3://{s3_bucket}/tenfra/prod"
    env = {"TENFRA_S3_ENDPOINT_URL": s3_endpoint, "AWS_DEFAULT_REGION": "us-east-1"}
    args = ("compile", "--out", url, "--signing-key", "../tenfra-signing.key")
    done = tenfra(*args, cwd=tmp_path / "examples", env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Release 0000000001-")

    monkeypatch.setenv("TENFRA_S3_ENDPOINT_URL", s3_endpoint)
    from tenfra.compiler import verify_release

    opened = release.open_release(url)
    verify_release(opened, release.load_public_key(tmp_path / "tenfra-signing.pub"))
    data, signature = release.read_bundle(url, opened.name, "web-01")
    bundle = release.verify_bundle(
        data,
        signature,
        tmp_path / "tenfra-signing.pub",
        host="web-01",
        min_sequence=0,
        now=None,
    )
    for digest in bundle["assets"]:
        release.verify_asset(release.read_asset(url, digest), digest)
    assert [r.name for r in release.list_releases(url)] == [opened.name]

    # The same inputs again (in this process): nothing new is written.
    from tenfra.compiler import CompileOptions, compile_release

    monkeypatch.chdir(tmp_path / "examples")
    monkeypatch.setenv("SOURCE_DATE_EPOCH", EPOCH)
    key = release.load_private_key(tmp_path / "tenfra-signing.key")

    def compile_to(out: str) -> Any:
        reset_plugin_manager()
        return compile_release(
            CompileOptions(
                inventory=Path("inventory.yaml"),
                recipes=Path("recipes"),
                out=out,
                signing_key=key,
                sequence=1,
            )
        )

    again = compile_to(url)
    assert again.unchanged and again.name == opened.name

    # A local compile of the same inputs is byte-identical to the S3 one.
    local = tmp_path / "local"
    assert compile_to(str(local)).name == opened.name
    import s3fs

    fs = s3fs.S3FileSystem(endpoint_url=s3_endpoint)
    remote = f"{s3_bucket}/tenfra/prod"
    for path in sorted(local.rglob("*")):
        if path.is_file():
            key = f"{remote}/{path.relative_to(local).as_posix()}"
            assert fs.cat_file(key) == path.read_bytes(), key
    assert not [p for p in fs.find(remote) if ".tmp-" in p]


@pytest.mark.integration
def test_s3_errors_are_one_line(tmp_path: Path, repo: Path, s3_endpoint: str) -> None:
    env = {"TENFRA_S3_ENDPOINT_URL": s3_endpoint, "AWS_DEFAULT_REGION": "us-east-1"}
    done = tenfra(
        "compile",
        "--out",
        "s3://no-such-bucket-tenfra/x",
        "--unsigned",
        cwd=repo,
        env=env,
    )
    assert done.returncode == 5, done.stderr
    line = one_error_line(done)
    assert "no-such-bucket-tenfra" in line
