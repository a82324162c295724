"""Signature checks without ``cryptography`` (the zipapp) go through python-ecdsa."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tenfra import release as rel
from tenfra.errors import VerificationError


@pytest.fixture
def keys(tmp_path: Path) -> tuple[object, Path, Path]:
    key = rel.generate_private_key()
    pub = tmp_path / "release.pub"
    pub.write_bytes(rel.public_key_pem(key))
    other = tmp_path / "other.pub"
    other.write_bytes(rel.public_key_pem(rel.generate_private_key()))
    return key, pub, other


@pytest.fixture
def no_cryptography(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(sys.modules):
        if name == "cryptography" or name.startswith("cryptography."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "cryptography", None)  # import fails
    with pytest.raises(ImportError):
        import cryptography.exceptions  # noqa: F401


def test_pure_fallback_accepts_a_good_signature(
    keys: tuple[object, Path, Path], no_cryptography: None
) -> None:
    key, pub, _ = keys
    data = b'{"host":"web-1"}'
    signature = rel.sign(data, key)  # type: ignore[arg-type]
    rel.check_signature(data, signature, pub, what="The bundle")
    rel.check_signature(data, signature, pub.read_bytes(), what="The bundle")
    rel.check_signature(data, signature, [keys[2], pub], what="The bundle")


@pytest.mark.parametrize("change", ["tampered", "truncated", "other-key", "garbage"])
def test_pure_fallback_rejects(
    keys: tuple[object, Path, Path], no_cryptography: None, change: str
) -> None:
    key, pub, other = keys
    data = b'{"host":"web-1","sequence":3}'
    signature = rel.sign(data, key)  # type: ignore[arg-type]
    trusted = pub
    if change == "tampered":
        data = data.replace(b"3", b"4")
    elif change == "truncated":
        data = data[:-3]
    elif change == "other-key":
        trusted = other
    else:
        signature = b"not base64!"
    with pytest.raises(VerificationError, match="rejected"):
        rel.check_signature(data, signature, trusted, what="The bundle")
