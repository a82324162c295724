"""Path traversal: provider asset serving, S3 key building, agent extraction.

Every vector of issue 12 is tried where a name from the outside becomes a
path or a key: ``..``, absolute paths, ``%2e%2e`` (and double encoding),
backslashes, NUL bytes, symlinks and hardlinks.

Already proven elsewhere (see docs/security.md): ``storage.safe_key`` refuses
escapes (tests/core/test_storage.py), the agent's ``safe_join``/``stage``
refuse escaping names (tests/agent/test_state.py), signed bundles with
escaping asset or site plugin names are rejected (tests/core/test_release.py),
and the ``download`` resource refuses zip-slip, absolute members, symlinks
and hardlinks out of the target (tests/plugins/cases/download/).
"""

from __future__ import annotations

import http.client
import io
import json
import socket
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tenfra import release as rel
from tenfra import storage
from tenfra.errors import StorageError, TaskError, VerificationError

# -- the provider, as a real process, with requests sent byte for byte ----------------

ASSET_PATHS = [
    "/api/v1/assets/..%2F..%2FLATEST",
    "/api/v1/assets/%2e%2e%2f%2e%2e%2fLATEST",
    "/api/v1/assets/%2E%2E/%2E%2E/LATEST",
    "/api/v1/assets/..%252f..%252fLATEST",
    "/api/v1/assets/..%5c..%5cLATEST",
    "/api/v1/assets/..\\..\\LATEST",
    "/api/v1/assets/%2Fetc%2Fpasswd",
    "/api/v1/assets//etc/passwd",
    "/api/v1/assets/%00",
    "/api/v1/assets/{digest}%00.json",
    "/api/v1/assets/{digest}/..%2F..%2F..%2FLATEST",
    "/api/v1/assets/../../LATEST",
]
OTHER_PATHS = [
    "/static/../provider.yaml",
    "/static/%2e%2e/%2e%2e/provider.yaml",
    "/static/..%2f..%2fapp.py",
    "/static/..%5c..%5capp.py",
    "/static/..\\app.py",
    "/static/%2e%2e%2fapp.py",
    "/static//etc/passwd",
    "/static/%2fetc%2fpasswd",
    "/static/style.css%00.py",
    "/admin/hosts/..%2f..%2fetc%2fpasswd",
    "/bootstrap/..%2fapi%2fv1%2fbundle",
    "/bootstrap/release.pub/..%2f..%2fprovider.yaml",
]


def raw_get(url: str, path: str, credential: str) -> tuple[int, bytes]:
    """Send ``GET path`` exactly as written (no client normalisation); a
    redirect to a path of the same server is followed once."""
    status, headers, body = _raw_get(url, path, credential)
    if status in (301, 302, 307, 308):
        location = headers.get("location", "")
        assert location.startswith((url, "http://127.0.0.1/", "/")), location
        target = "/" + location.split("://", 1)[-1].partition("/")[2]
        assert "/../" not in target and "\\" not in target, target
        status, _, body = _raw_get(url, target, credential)
    return status, body


def _raw_get(url: str, path: str, credential: str) -> tuple[int, dict[str, str], bytes]:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\n"
            f"Authorization: Bearer {credential}\r\nConnection: close\r\n\r\n"
        )
        sock.sendall(request.encode("latin-1"))
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    response = b"".join(chunks)
    head, _, body = response.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {
        name.strip().lower(): value.strip()
        for name, _, value in (line.partition(":") for line in lines[1:])
    }
    return int(lines[0].split(" ", 2)[1]), headers, body


def test_provider_never_serves_a_file_outside_its_roots(repo: Any, served: Any) -> None:
    name = repo.compile("v1")
    served.wait_release(name)
    conn = http.client.HTTPConnection(served.url.removeprefix("http://"), timeout=10)
    conn.request(
        "POST",
        "/api/v1/enroll",
        body=json.dumps({"host": "web-1", "token": served.token("web-1")}),
        headers={"Content-Type": "application/json"},
    )
    credential = json.loads(conn.getresponse().read())["credential"]
    bundle = json.loads(repo.bundle(name, "web-1")[0])
    digest = bundle["assets"][0]

    # What must never come back: files next to the release storage, the
    # provider's configuration, its source, the system's passwords.
    secrets = [
        (repo.out / "LATEST").read_bytes().strip(),
        served.config.read_bytes()[:60],
        b"def create_app",
        b"root:x:0:",
    ]
    own = raw_get(served.url, f"/api/v1/assets/{digest}", credential)
    assert own[0] == 200  # the same credential can read its own asset

    for template in ASSET_PATHS + OTHER_PATHS:
        path = template.format(digest=digest)
        status, body = raw_get(served.url, path, credential)
        assert status in (400, 401, 403, 404), (path, status, body[:200])
        for secret in secrets:
            assert secret not in body, (path, secret)
        assert b"Traceback" not in body, path
    assert served.proc is not None and served.proc.poll() is None
    assert "Traceback" not in served.log_tail(100_000)


# -- S3 keys (moto) --------------------------------------------------------------------


@pytest.mark.integration
def test_s3_keys_never_leave_their_prefix(
    s3_endpoint: str, s3_bucket: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import s3fs

    monkeypatch.setenv("TENFRA_S3_ENDPOINT_URL", s3_endpoint)
    fs = s3fs.S3FileSystem(
        endpoint_url=s3_endpoint, key="tenfra-test", secret="tenfra-test-secret"
    )
    fs.pipe_file(f"{s3_bucket}/secret.json", b"outside the prefix")
    fs.pipe_file(f"{s3_bucket}/tenfra/releases/LATEST", b"not a release folder")
    base = f"s3://{s3_bucket}/tenfra"

    # A real release under the prefix.
    key = rel.generate_private_key()
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "r.yaml").write_text(
        "name: r\ntargets: web-1\ntasks: []\n", encoding="utf-8"
    )
    (tmp_path / "inventory.yaml").write_text("hosts: [web-1]\n", encoding="utf-8")
    from tenfra.compiler import CompileOptions, compile_release

    result = compile_release(
        CompileOptions(
            inventory=tmp_path / "inventory.yaml",
            recipes=tmp_path / "recipes",
            out=base,
            signing_key=key,
        )
    )

    evil_hosts = [
        "../../secret",
        "..",
        "/secret",
        "..\\..\\secret",
        "web-1\x00",
        "a/../../../secret",
        "./web-1",
    ]
    for host in evil_hosts:
        # Refused as a key, or (".." + ".json" is the plain name "...json")
        # simply not found: never another object.
        with pytest.raises((StorageError, FileNotFoundError)):
            rel.read_bundle(base, result.name, host)
    for digest in ["../secret.json", "..%2Fsecret.json", "0" * 63, "/secret.json"]:
        with pytest.raises(StorageError):
            rel.read_asset(base, digest)
    for selector in ["../..", "../../secret.json", "/secret", "..\\secret"]:
        with pytest.raises(StorageError):
            rel.open_release(base, selector)

    # The provider's own storage access refuses the same keys.
    from tenfra.provider.config import ProviderConfig
    from tenfra.provider.releases import Storage

    provider_storage = Storage(
        ProviderConfig.from_mapping(
            {
                "releases": {"url": base},
                "auth": {"secretKey": "k" * 32},
            }
        )
    )
    for evil in ["../secret.json", "/secret.json", "a/../../secret.json", "x\\y"]:
        with pytest.raises(StorageError):
            provider_storage.read(evil)
    with pytest.raises(StorageError):
        provider_storage.open_asset("../secret.json")
    assert provider_storage.latest() == result.name

    # A percent-encoded name is a literal key, never decoded into '..'.
    bucket_fs, root = storage.open_fs(f"s3://{s3_bucket}")
    literal = storage.safe_key("tenfra", "%2e%2e", "secret.json")
    storage.write_atomic(bucket_fs, storage.join(root, literal), b"literal")
    assert fs.cat_file(f"{s3_bucket}/tenfra/%2e%2e/secret.json") == b"literal"
    assert fs.cat_file(f"{s3_bucket}/secret.json") == b"outside the prefix"


# -- agent extraction ---------------------------------------------------------

ESCAPES = [
    "../evil",
    "a/../../evil",
    "/etc/evil",
    "..\\..\\evil",
    "a\\..\\..\\evil",
    "a\x00b",
    "",
    "./a",
    "a//b",
]


def _bundle(**changes: Any) -> dict[str, Any]:
    asset = "a" * 64
    bundle: dict[str, Any] = {
        "format": 1,
        "host": "web-1",
        "release": "0123456789abcdef0123",
        "sequence": 2,
        "created": "2030-01-01T00:00:00Z",
        "expires": "2099-01-01T00:00:00Z",
        "recipes": {
            "web": {"path": "web/main.yaml", "source": "", "assets": {"a": asset}}
        },
        "vars": {},
        "groups": [],
        "otherHosts": {},
        "sitePlugins": {},
        "plugins": {},
        "assets": [asset],
        "run": {"bootstrap": [], "runtime": ["web"]},
    }
    bundle.update(changes)
    return bundle


def _places(bad: str) -> dict[str, dict[str, Any]]:
    asset = "a" * 64
    return {
        "recipe path": _bundle(
            recipes={"web": {"path": bad, "source": "", "assets": {}}}
        ),
        "recipe id": _bundle(
            recipes={bad: {"path": "web/main.yaml", "source": "", "assets": {}}},
            run={"bootstrap": [], "runtime": []},
        ),
        "asset name": _bundle(
            recipes={
                "web": {"path": "web/main.yaml", "source": "", "assets": {bad: asset}}
            }
        ),
        "site plugin": _bundle(sitePlugins={bad: asset}),
    }


@pytest.mark.parametrize("bad", ESCAPES)
def test_signed_bundles_with_escaping_names_are_rejected(bad: str) -> None:
    """Even correctly signed (a leaked CI key, a compiler bug): every name the
    agent turns into a path is checked before anything is written."""
    key = rel.generate_private_key()
    for place, bundle in _places(bad).items():
        data = rel.canonical_json(bundle)
        with pytest.raises(VerificationError) as info:
            rel.verify_bundle(
                data,
                rel.sign(data, key),
                key.public_key(),
                host="web-1",
                min_sequence=1,
                now=None,
            )
        assert "escape its folder" in str(info.value), (place, bad)


def test_percent_encoded_names_stay_literal_inside_the_release(
    tmp_path: Path,
) -> None:
    """``%2e%2e`` is a folder name, not '..': staged inside, never decoded."""
    from tenfra.agent.state import StateDir

    key = rel.generate_private_key()
    bundle = _bundle(
        recipes={"web": {"path": "%2e%2e/%2e%2e/main.yaml", "source": "", "assets": {}}}
    )
    data = rel.canonical_json(bundle)
    rel.verify_bundle(
        data,
        rel.sign(data, key),
        key.public_key(),
        host="web-1",
        min_sequence=1,
        now=None,
    )
    state = StateDir(tmp_path / "state")
    state.ensure()
    folder = state.stage(
        "0000000002-0123456789abcdef0123",
        {"recipes/%2e%2e/%2e%2e/main.yaml": b"name: web\n"},
    )
    written = list(tmp_path.rglob("main.yaml"))
    assert written == [folder / "recipes" / "%2e%2e" / "%2e%2e" / "main.yaml"]


@pytest.mark.parametrize("bad", ESCAPES)
def test_staging_refuses_escaping_names_and_writes_nothing(
    tmp_path: Path, bad: str
) -> None:
    from tenfra.agent.state import StateDir

    state = StateDir(tmp_path / "state")
    state.ensure()
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    with pytest.raises(VerificationError):
        state.stage(
            "0000000002-0123456789abcdef0123",
            {"recipes/ok.yaml": b"ok", f"recipes/{bad}": b"evil"},
        )
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before


# -- archives the download resource extracts (vectors the cases do not cover) ----------


def _zip(tmp_path: Path, members: dict[str, bytes]) -> Path:
    path = tmp_path / "evil.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            info = zipfile.ZipInfo(name)
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
    return path


def _tar(tmp_path: Path, members: list[tarfile.TarInfo]) -> Path:
    path = tmp_path / "evil.tar"
    with tarfile.open(path, "w") as archive:
        for info in members:
            data = b"x" if info.isreg() else b""
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data) if data else None)
    return path


def _link(name: str, target: str, *, hard: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.LNKTYPE if hard else tarfile.SYMTYPE
    info.linkname = target
    return info


def _file(name: str) -> tarfile.TarInfo:
    return tarfile.TarInfo(name)


ARCHIVES: dict[str, Any] = {
    "zip backslash climb": lambda t: _zip(t, {"..\\..\\evil.txt": b"x"}),
    "zip drive letter": lambda t: _zip(t, {"C:\\evil.txt": b"x"}),
    "zip absolute": lambda t: _zip(t, {"/tmp/evil.txt": b"x"}),
    "zip mixed separators": lambda t: _zip(t, {"a/..\\..\\evil.txt": b"x"}),
    "tar backslash climb": lambda t: _tar(t, [_file("..\\..\\evil.txt")]),
    "tar symlink to root then write": lambda t: _tar(
        t, [_link("root", "/"), _file("root/tmp/evil.txt")]
    ),
    "tar relative symlink out": lambda t: _tar(t, [_link("up", "../../..")]),
    "tar symlink via backslash": lambda t: _tar(t, [_link("up", "..\\..\\..")]),
    "tar hardlink to a system file": lambda t: _tar(
        t, [_link("passwd", "/etc/passwd", hard=True)]
    ),
    "tar hardlink climbing": lambda t: _tar(
        t, [_link("passwd", "../../etc/passwd", hard=True)]
    ),
    "tar symlink chain": lambda t: _tar(
        t, [_link("a", "."), _link("a/b", ".."), _link("a/b/c", "..")]
    ),
}


@pytest.mark.parametrize("case", sorted(ARCHIVES))
def test_archive_escapes_are_refused_before_writing(tmp_path: Path, case: str) -> None:
    from tenfra.fileops import safe_extract

    archive = ARCHIVES[case](tmp_path)
    root = tmp_path / "root" / "out"
    root.mkdir(parents=True)
    try:
        names = safe_extract(archive, root)
    except TaskError as exc:
        assert str(archive.name) in str(exc)
        assert list(root.iterdir()) == []
    else:
        # A backslash is an ordinary character on Linux: accepted only when
        # every written file is inside the target.
        for name in names:
            path = (root / name).resolve()
            assert path.is_relative_to(root.resolve()), (case, name)
    assert not (tmp_path / "evil.txt").exists()
    assert not (tmp_path / "root" / "evil.txt").exists()
    assert not Path("/tmp/evil.txt").exists()
