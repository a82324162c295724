"""Release format helpers: canonical JSON, keys, signatures and verification."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from pathlib import Path
from typing import Any, Callable

import pytest

from tenfra import release, storage
from tenfra.errors import StorageError, UserError, VerificationError

NOW = dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)
ASSET = hashlib.sha256(b"asset").hexdigest()
PLUGIN = hashlib.sha256(b"plugin").hexdigest()


def make_bundle(**changes: Any) -> dict[str, Any]:
    bundle: dict[str, Any] = {
        "format": 1,
        "host": "web-01",
        "release": "0123456789abcdef0123",
        "sequence": 5,
        "created": "2029-12-31T00:00:00Z",
        "expires": "2030-01-30T00:00:00Z",
        "recipes": {
            "web": {
                "path": "web/main.yaml",
                "source": "name: web\ntasks: []\n",
                "assets": {"site.conf": ASSET},
            }
        },
        "vars": {"port": 80, "canary": "héllo"},
        "groups": ["web"],
        "otherHosts": {},
        "sitePlugins": {"acme.py": PLUGIN},
        "plugins": {"files": "0.1.0"},
        "assets": sorted([ASSET, PLUGIN]),
        "run": {"bootstrap": [], "runtime": ["web"]},
    }
    bundle.update(changes)
    return bundle


@pytest.fixture(scope="module")
def key() -> Any:
    return release.generate_private_key()


def signed(key: Any, value: dict[str, Any]) -> tuple[bytes, bytes]:
    data = release.canonical_json(value)
    return data, release.sign(data, key)


def verify(key: Any, data: bytes, signature: Any, **kwargs: Any) -> dict[str, Any]:
    options: dict[str, Any] = {"host": "web-01", "min_sequence": 4, "now": NOW}
    options.update(kwargs)
    return release.verify_bundle(data, signature, key.public_key(), **options)


# -- canonical JSON, digests, names --------------------------------------------


def test_canonical_json_is_sorted_compact_utf8() -> None:
    data = release.canonical_json({"b": [1, {"z": 1, "a": "é"}], "a": None})
    assert data == '{"a":null,"b":[1,{"a":"é","z":1}]}'.encode()
    assert not data.endswith(b"\n")
    with pytest.raises(ValueError):
        release.canonical_json({"x": float("nan")})


def test_release_id_ignores_time_and_sequence() -> None:
    one = make_bundle()
    two = make_bundle(sequence=9, created="2031-01-01T00:00:00Z", release="f" * 20)
    assert release.content_digest(one) == release.content_digest(two)
    three = make_bundle(vars={"port": 81})
    assert release.content_digest(one) != release.content_digest(three)
    ident = release.compute_release_id({"web-01": release.content_digest(one)}, {})
    assert len(ident) == 20 and release.is_release_id(ident)
    other = release.compute_release_id(
        {"web-01": release.content_digest(one)}, {"x": "1"}
    )
    assert ident != other


def test_release_names_round_trip() -> None:
    name = release.release_name(42, "0123456789abcdef0123")
    assert name == "0000000042-0123456789abcdef0123"
    assert release.parse_release_name(name) == (42, "0123456789abcdef0123")
    assert release.parse_release_name("42-abc") is None
    assert release.parse_release_name("../0000000042-0123456789abcdef0123") is None


def test_times_are_utc_with_z() -> None:
    moment = dt.datetime(2024, 5, 6, 7, 8, 9, 123, tzinfo=dt.timezone.utc)
    text = release.format_time(moment)
    assert text == "2024-05-06T07:08:09Z"
    assert release.parse_time(text) == moment.replace(microsecond=0)


# -- keys ----------------------------------------------------------------------


def test_key_pem_round_trip(tmp_path: Path, key: Any) -> None:
    private = tmp_path / "k.pem"
    public = tmp_path / "k.pub"
    private.write_bytes(release.private_key_pem(key))
    public.write_bytes(release.public_key_pem(key))
    loaded = release.load_private_key(private)
    assert release.key_id(loaded) == release.key_id(key)
    assert release.key_id(release.load_public_key(public)) == release.key_id(key)
    assert release.key_id(release.load_public_key(public.read_bytes())) == (
        release.key_id(key)
    )
    assert len(release.key_id(key)) == 16


def test_encrypted_key_needs_passphrase(
    tmp_path: Path, key: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    private = tmp_path / "k.pem"
    private.write_bytes(release.private_key_pem(key, b"s3cret"))
    monkeypatch.delenv(release.ENV_KEY_PASSPHRASE, raising=False)
    with pytest.raises(
        UserError, match="is encrypted; set TENFRA_SIGNING_KEY_PASSPHRASE"
    ):
        release.load_private_key(private)
    monkeypatch.setenv(release.ENV_KEY_PASSPHRASE, "s3cret")
    assert release.key_id(release.load_private_key(private)) == release.key_id(key)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "Cannot read the signing key"),
        (b"not a key", "is not a readable PEM private key"),
    ],
)
def test_bad_private_keys(tmp_path: Path, content: Any, message: str) -> None:
    path = tmp_path / "key.pem"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(UserError, match=message):
        release.load_private_key(path)


def test_non_ed25519_keys_are_refused(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    other = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / "ec.pem"
    path.write_bytes(
        other.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(UserError, match="not an ed25519 key"):
        release.load_private_key(path)
    pub = tmp_path / "ec.pub"
    pub.write_bytes(
        other.public_key().public_bytes(
            serialization.Encoding.PEM,
            serialization.PublicFormat.SubjectPublicKeyInfo,
        )
    )
    with pytest.raises(UserError, match="not an ed25519 key"):
        release.load_public_key(pub)
    with pytest.raises(UserError, match="Cannot read the public key"):
        release.load_public_key(tmp_path / "missing.pub")


# -- verify_bundle -------------------------------------------------------------


def test_valid_bundle_verifies(key: Any) -> None:
    data, signature = signed(key, make_bundle())
    bundle = verify(key, data, signature)
    assert bundle["vars"]["canary"] == "héllo"
    # The signature may also be given as text, and with a trailing newline.
    assert verify(key, data, signature.decode() + "\n")["host"] == "web-01"


def test_every_changed_byte_fails(key: Any) -> None:
    data, signature = signed(key, make_bundle())
    for index in range(len(data)):
        tampered = bytearray(data)
        tampered[index] ^= 0x01
        with pytest.raises(VerificationError, match="does not match its signature"):
            verify(key, bytes(tampered), signature)


def _flip_signature(signature: bytes) -> bytes:
    raw = bytearray(base64.b64decode(signature))
    raw[10] ^= 0x40
    return base64.b64encode(bytes(raw))


Case = Callable[[Any], tuple[bytes, Any, dict[str, Any]]]

TAMPERING: dict[str, tuple[Case, str]] = {
    "missing signature": (
        lambda k: (signed(k, make_bundle())[0], None, {}),
        "has no signature",
    ),
    "empty signature": (
        lambda k: (signed(k, make_bundle())[0], b"", {}),
        "has no signature",
    ),
    "signature not base64": (
        lambda k: (signed(k, make_bundle())[0], b"!!!", {}),
        "not valid base64",
    ),
    "changed signature": (
        lambda k: (
            signed(k, make_bundle())[0],
            _flip_signature(signed(k, make_bundle())[1]),
            {},
        ),
        "does not match its signature",
    ),
    "truncated": (
        lambda k: (signed(k, make_bundle())[0][:-7], signed(k, make_bundle())[1], {}),
        "does not match its signature",
    ),
    "appended newline": (
        lambda k: (
            signed(k, make_bundle())[0] + b"\n",
            signed(k, make_bundle())[1],
            {},
        ),
        "does not match its signature",
    ),
    "signed by another key": (
        lambda k: (*signed(release.generate_private_key(), make_bundle()), {}),
        "does not match its signature",
    ),
    "other host": (
        lambda k: (*signed(k, make_bundle(host="web-02")), {}),
        "compiled for host 'web-02'",
    ),
    "older sequence": (
        lambda k: (*signed(k, make_bundle(sequence=3)), {}),
        "sequence 3, but sequence 4 was already applied",
    ),
    "replayed sequence of another release": (
        lambda k: (*signed(k, make_bundle(sequence=4)), {"current_release": "x"}),
        "already applied",
    ),
    "expired": (
        lambda k: (*signed(k, make_bundle(expires="2029-12-31T23:59:59Z")), {}),
        "expired at 2029-12-31T23:59:59Z",
    ),
    "expires exactly now": (
        lambda k: (*signed(k, make_bundle(expires="2030-01-01T00:00:00Z")), {}),
        "expired",
    ),
    "wrong format": (
        lambda k: (*signed(k, make_bundle(format=2)), {}),
        "has format 2",
    ),
    "missing key": (
        lambda k: (
            *signed(k, {a: b for a, b in make_bundle().items() if a != "vars"}),
            {},
        ),
        "lacks the key 'vars'",
    ),
    "wrong type": (
        lambda k: (*signed(k, make_bundle(sequence="5")), {}),
        "wrong type for 'sequence'",
    ),
    "not canonical": (
        lambda k: (
            (raw := release.canonical_json(make_bundle()).replace(b",", b", ", 1)),
            release.sign(raw, k),
            {},
        ),
        "canonical JSON",
    ),
    "not JSON": (
        lambda k: (b"\x00garbage", release.sign(b"\x00garbage", k), {}),
        "not valid JSON",
    ),
    "not an object": (
        lambda k: (b"[]", release.sign(b"[]", k), {}),
        "not a JSON object",
    ),
    "asset name escapes": (
        lambda k: (
            *signed(
                k,
                make_bundle(
                    recipes={
                        "web": {
                            "path": "web/main.yaml",
                            "source": "",
                            "assets": {"../../etc/passwd": ASSET},
                        }
                    }
                ),
            ),
            {},
        ),
        "could escape its folder",
    ),
    "site plugin escapes": (
        lambda k: (*signed(k, make_bundle(sitePlugins={"/etc/x.py": PLUGIN})), {}),
        "could escape its folder",
    ),
    "bad digest": (
        lambda k: (*signed(k, make_bundle(assets=["../x"])), {}),
        "not a sha256 digest",
    ),
    "unlisted asset": (
        lambda k: (*signed(k, make_bundle(assets=[ASSET])), {}),
        "does not list",
    ),
    "bad time": (
        lambda k: (*signed(k, make_bundle(created="yesterday")), {}),
        "invalid 'created' time",
    ),
}


@pytest.mark.parametrize("case", sorted(TAMPERING))
def test_tampering_table(key: Any, case: str) -> None:
    build, message = TAMPERING[case]
    data, signature, extra = build(key)
    with pytest.raises(VerificationError) as info:
        verify(key, data, signature, **extra)
    assert message in str(info.value)
    assert str(info.value).endswith(".")


def test_reapply_of_the_same_release_is_allowed(key: Any) -> None:
    data, signature = signed(key, make_bundle(sequence=4))
    bundle = verify(key, data, signature, current_release="0123456789abcdef0123")
    assert bundle["sequence"] == 4


def test_first_release_and_timestamps(key: Any) -> None:
    data, signature = signed(key, make_bundle(sequence=1))
    assert verify(key, data, signature, min_sequence=0, now=NOW.timestamp())
    old, old_signature = signed(key, make_bundle(expires="2001-01-01T00:00:00Z"))
    with pytest.raises(VerificationError, match="expired"):
        verify(key, old, old_signature, now=None)  # the real clock


def test_unsigned_bundles_only_when_allowed(key: Any) -> None:
    data = release.canonical_json(make_bundle())
    with pytest.raises(VerificationError, match="has no signature"):
        verify(key, data, None)
    assert verify(key, data, None, allow_unsigned=True)["host"] == "web-01"
    # A signature that is present is still checked.
    with pytest.raises(VerificationError, match="does not match"):
        verify(key, data, release.sign(b"other", key), allow_unsigned=True)


def test_key_rotation_accepts_any_trusted_key(key: Any) -> None:
    new = release.generate_private_key()
    data, signature = signed(new, make_bundle())
    bundle = release.verify_bundle(
        data,
        signature,
        [key.public_key(), release.public_key_pem(new)],
        host="web-01",
        min_sequence=0,
        now=NOW,
    )
    assert bundle["host"] == "web-01"
    with pytest.raises(VerificationError, match="no public key is configured"):
        release.verify_bundle(
            data, signature, None, host="web-01", min_sequence=0, now=NOW
        )


# -- verify_manifest and assets ------------------------------------------------


def make_manifest(**changes: Any) -> dict[str, Any]:
    manifest: dict[str, Any] = {
        "format": 1,
        "release": "0123456789abcdef0123",
        "sequence": 5,
        "created": "2029-12-31T00:00:00Z",
        "expires": "2030-01-30T00:00:00Z",
        "plugins": {"files": "0.1.0"},
        "hosts": {"web-01": "sha256:" + ASSET},
        "assets": [ASSET],
        "keyId": "0011223344556677",
    }
    manifest.update(changes)
    return manifest


def test_manifest_verifies_and_rejects_changes(key: Any) -> None:
    data, signature = signed(key, make_manifest())
    public = key.public_key()
    assert release.verify_manifest(data, signature, public)["sequence"] == 5
    for index in range(len(data)):
        tampered = bytearray(data)
        tampered[index] ^= 0x20
        with pytest.raises(VerificationError):
            release.verify_manifest(bytes(tampered), signature, public)
    with pytest.raises(VerificationError, match="manifest has no signature"):
        release.verify_manifest(data, None, public)
    with pytest.raises(VerificationError, match="expired"):
        release.verify_manifest(
            data,
            signature,
            public,
            now=NOW + dt.timedelta(days=60),
            check_expiry=True,
        )
    bad, bad_signature = signed(key, make_manifest(hosts={"../x": "sha256:" + ASSET}))
    with pytest.raises(VerificationError, match="could escape"):
        release.verify_manifest(bad, bad_signature, public)
    bad, bad_signature = signed(key, make_manifest(hosts={"a": "md5:00"}))
    with pytest.raises(VerificationError, match="invalid digest for host 'a'"):
        release.verify_manifest(bad, bad_signature, public)


def test_verify_asset() -> None:
    release.verify_asset(b"asset", ASSET)
    with pytest.raises(VerificationError, match="wrong content"):
        release.verify_asset(b"assets", ASSET)


# -- reading releases from storage ---------------------------------------------


def _write_release(base: Path, key: Any, sequence: int, ident: str) -> str:
    name = release.release_name(sequence, ident)
    folder = base / "releases" / name
    (folder / "hosts").mkdir(parents=True)
    bundle, signature = signed(key, make_bundle(sequence=sequence, release=ident))
    (folder / "hosts" / "web-01.json").write_bytes(bundle)
    (folder / "hosts" / "web-01.json.sig").write_bytes(signature)
    manifest, msig = signed(key, make_manifest(sequence=sequence, release=ident))
    (folder / "manifest.json").write_bytes(manifest)
    (folder / "manifest.json.sig").write_bytes(msig)
    (base / "assets").mkdir(exist_ok=True)
    (base / "assets" / ASSET).write_bytes(b"asset")
    (base / "LATEST").write_text(name + "\n")
    return name


def test_open_list_and_read(tmp_path: Path, key: Any) -> None:
    assert release.read_latest(str(tmp_path)) is None
    assert release.list_releases(str(tmp_path)) == []
    with pytest.raises(StorageError, match="no LATEST file"):
        release.open_release(str(tmp_path))
    first = _write_release(tmp_path, key, 1, "a" * 20)
    second = _write_release(tmp_path, key, 2, "b" * 20)
    # An incomplete release (no manifest) is not listed.
    (tmp_path / "releases" / release.release_name(3, "c" * 20)).mkdir()
    refs = release.list_releases(f"file://{tmp_path}")
    assert [r.name for r in refs] == [first, second]
    assert release.read_latest(str(tmp_path)) == refs[-1]

    latest = release.open_release(str(tmp_path))
    assert latest.name == second
    assert latest.hosts == ["web-01"]
    data, signature = latest.bundle("web-01")
    assert verify(key, data, signature, min_sequence=1)["release"] == "b" * 20
    with pytest.raises(KeyError):
        latest.bundle("db-01")
    assert latest.asset(ASSET) == b"asset"
    assert release.verify_manifest(
        latest.manifest_bytes, latest.manifest_signature, key.public_key()
    )

    for selector in (1, "1", first, "aaaa"):
        assert release.open_release(str(tmp_path), selector).name == first
    direct = release.open_release(str(tmp_path / "releases" / first))
    assert direct.name == first and direct.base == str(tmp_path)
    with pytest.raises(StorageError, match="No release '7'"):
        release.open_release(str(tmp_path), 7)

    data, signature = release.read_bundle(str(tmp_path), second, "web-01")
    assert signature is not None and data.startswith(b"{")
    with pytest.raises(FileNotFoundError):
        release.read_bundle(str(tmp_path), second, "db-01")
    with pytest.raises(StorageError):
        release.read_bundle(str(tmp_path), second, "../../LATEST")
    with pytest.raises(StorageError):
        release.read_bundle(str(tmp_path), "../x", "web-01")
    assert release.read_asset(str(tmp_path), ASSET) == b"asset"
    with pytest.raises(StorageError):
        release.read_asset(str(tmp_path), "../LATEST")


def test_broken_latest_pointer(tmp_path: Path) -> None:
    (tmp_path / "LATEST").write_text("nonsense")
    with pytest.raises(StorageError, match="does not name a release"):
        release.read_latest(str(tmp_path))


def test_bundle_keys_are_safe_for_storage() -> None:
    for name in make_bundle()["sitePlugins"]:
        assert storage.is_safe_key(name)
