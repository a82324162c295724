"""The release format: canonical JSON, digests, ed25519 keys, signing and verification.

The compiler writes releases with these helpers, the provider reads them and
the agent verifies what it receives with :func:`verify_bundle`, the one
verification function.  Layout under a storage URL ``BASE`` (see
docs/releases.md)::

    BASE/assets/<sha256>
    BASE/releases/<NNNNNNNNNN>-<id>/manifest.json[.sig]
    BASE/releases/<NNNNNNNNNN>-<id>/hosts/<host>.json[.sig]
    BASE/LATEST

This module runs on the agent (Python 3.9); cryptography and fsspec are
imported only inside the functions that need them.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import logging
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence, Union

import attrs

from tenfra import storage
from tenfra.errors import StorageError, UserError, VerificationError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )
    from fsspec import AbstractFileSystem

logger = logging.getLogger(__name__)

FORMAT = 1
RELEASES = "releases"
ASSETS = "assets"
HOSTS = "hosts"
LATEST = "LATEST"
MANIFEST = "manifest.json"
SIG = ".sig"
ID_LENGTH = 20
SEQUENCE_WIDTH = 10

# Bundle keys that change with every compile and are left out of the release id.
VOLATILE_KEYS = ("created", "expires", "release", "sequence")

ENV_SIGNING_KEY = "TENFRA_SIGNING_KEY"
ENV_KEY_PASSPHRASE = "TENFRA_SIGNING_KEY_PASSPHRASE"  # noqa: S105 (a variable name)

_HEX64 = re.compile(r"[0-9a-f]{64}")
_NAME = re.compile(rf"(\d{{{SEQUENCE_WIDTH}}})-([0-9a-f]{{{ID_LENGTH}}})")

PublicKeyLike = Union["Ed25519PublicKey", bytes, str, Path]


# -- canonical JSON and digests ---------------------------------------------------


def canonical_json(value: Any) -> bytes:
    """UTF-8 JSON with sorted keys, no spaces, no NaN and no trailing newline."""
    return json.dumps(
        value,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    ).encode("utf-8")


def sha256_hex(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def digest_of(data: bytes) -> str:
    """``sha256:<hex>`` of ``data`` (the form used in manifests and ETags)."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def is_sha256(text: object) -> bool:
    """Whether ``text`` is 64 lower-case hex characters."""
    return isinstance(text, str) and _HEX64.fullmatch(text) is not None


def compute_release_id(content_digests: Mapping[str, str], plugins: Any) -> str:
    """The release id: a hash of every host's content digest and the plugin pins.

    ``content_digests`` maps each host to the hex sha256 of its bundle without
    the volatile keys (:data:`VOLATILE_KEYS`), so the id does not depend on the
    sequence or the creation time.
    """
    body = canonical_json({"hosts": dict(content_digests), "plugins": plugins})
    return sha256_hex(body)[:ID_LENGTH]


def content_digest(bundle: Mapping[str, Any]) -> str:
    """Hex sha256 of a bundle without its volatile keys."""
    stable = {k: v for k, v in bundle.items() if k not in VOLATILE_KEYS}
    return sha256_hex(canonical_json(stable))


def release_name(sequence: int, release_id: str) -> str:
    """The folder name of a release: zero-padded sequence, ``-``, release id."""
    return f"{sequence:0{SEQUENCE_WIDTH}d}-{release_id}"


def parse_release_name(name: str) -> Optional[tuple[int, str]]:
    """``(sequence, release id)`` of a release folder name, or None."""
    found = _NAME.fullmatch(name.strip())
    if found is None:
        return None
    return int(found.group(1)), found.group(2)


def format_time(moment: dt.datetime) -> str:
    """ISO 8601 UTC with a ``Z``, to the second."""
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> dt.datetime:
    """Parse the ISO 8601 times of a release (``Z`` or an offset)."""
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    moment = dt.datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return moment


def _as_datetime(now: Union[dt.datetime, float, None]) -> dt.datetime:
    if now is None:
        return dt.datetime.now(dt.timezone.utc)
    if isinstance(now, dt.datetime):
        return now if now.tzinfo else now.replace(tzinfo=dt.timezone.utc)
    return dt.datetime.fromtimestamp(float(now), dt.timezone.utc)


# -- keys ---------------------------------------------------------------------------


def generate_private_key() -> Ed25519PrivateKey:
    """A new ed25519 private key."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.generate()


def private_key_pem(
    key: Ed25519PrivateKey, passphrase: Optional[bytes] = None
) -> bytes:
    """PKCS#8 PEM of a private key, encrypted when ``passphrase`` is given."""
    from cryptography.hazmat.primitives import serialization

    encryption: serialization.KeySerializationEncryption
    if passphrase:
        encryption = serialization.BestAvailableEncryption(passphrase)
    else:
        encryption = serialization.NoEncryption()
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def public_key_pem(key: Union[Ed25519PrivateKey, Ed25519PublicKey]) -> bytes:
    """SubjectPublicKeyInfo PEM of a public key (or of a private key's public half)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def key_id(key: Union[Ed25519PrivateKey, Ed25519PublicKey]) -> str:
    """A short, stable name of a key: 16 hex characters of the public key's hash."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    raw = public.public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return sha256_hex(raw)[:16]


def load_private_key(path: Union[str, Path]) -> Ed25519PrivateKey:
    """Read an ed25519 private key from a PEM file.

    An encrypted key is opened with ``TENFRA_SIGNING_KEY_PASSPHRASE``.  Raises
    :class:`UserError` with the path and what to try.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise UserError(
            f"Cannot read the signing key {path}: {exc.strerror}. Create one with "
            "'tenfra keygen' or point --signing-key (or TENFRA_SIGNING_KEY) at it."
        ) from None
    passphrase = os.environ.get(ENV_KEY_PASSPHRASE)
    try:
        key = serialization.load_pem_private_key(
            data, password=passphrase.encode("utf-8") if passphrase else None
        )
    except TypeError:
        raise UserError(
            f"The signing key {path} is encrypted; set {ENV_KEY_PASSPHRASE} to its "
            "passphrase."
        ) from None
    except ValueError:
        raise UserError(
            f"The signing key {path} is not a readable PEM private key (or the "
            "passphrase is wrong); create one with 'tenfra keygen'."
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise UserError(
            f"The signing key {path} is not an ed25519 key; tenfra signs releases "
            "with ed25519 only. Create one with 'tenfra keygen'."
        )
    return key


def load_public_key(source: PublicKeyLike) -> Ed25519PublicKey:
    """An ed25519 public key from a key object, PEM bytes, or a PEM file path.

    Raises :class:`UserError` when the file cannot be read or is not an
    ed25519 public key.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    if isinstance(source, Ed25519PublicKey):
        return source
    where = "the given public key"
    if isinstance(source, bytes):
        data = source
    else:
        where = f"the public key {source}"
        try:
            data = Path(source).read_bytes()
        except OSError as exc:
            raise UserError(
                f"Cannot read {where}: {exc.strerror}. Copy the '.pub' file made "
                "by 'tenfra keygen' there."
            ) from None
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError:
        raise UserError(
            f"{where[0].upper()}{where[1:]} is not a PEM public key; use the "
            "'.pub' file made by 'tenfra keygen'."
        ) from None
    if not isinstance(key, Ed25519PublicKey):
        raise UserError(f"{where[0].upper()}{where[1:]} is not an ed25519 key.")
    return key


def sign(data: bytes, key: Ed25519PrivateKey) -> bytes:
    """The content of a signature file: base64 of the ed25519 signature of ``data``."""
    return base64.b64encode(key.sign(data))


def _public_keys(
    public_key: Union[PublicKeyLike, Sequence[PublicKeyLike], None],
) -> list[Ed25519PublicKey]:
    if public_key is None:
        return []
    if isinstance(public_key, (list, tuple)):
        return [load_public_key(item) for item in public_key]
    return [load_public_key(public_key)]  # type: ignore[arg-type]


def check_signature(
    data: bytes,
    signature: Union[bytes, str, None],
    public_key: Union[PublicKeyLike, Sequence[PublicKeyLike], None],
    *,
    what: str,
    allow_unsigned: bool = False,
) -> None:
    """Check the base64 ed25519 ``signature`` of ``data`` against trusted keys.

    ``public_key`` may be one key or a list (key rotation); ``what`` names the
    signed file in messages.  Raises :class:`VerificationError`.
    """
    if signature is None or not signature.strip():
        if allow_unsigned:
            logger.warning(
                "%s is unsigned; accepted because unsigned releases are allowed", what
            )
            return
        raise VerificationError(
            f"{what} has no signature, so it was rejected. Compile releases with "
            "--signing-key; accept unsigned releases only for local experiments."
        )
    try:
        from cryptography.exceptions import InvalidSignature
    except ImportError:  # the agent zipapp on a host without python3-cryptography
        return _check_signature_pure(data, signature, public_key, what=what)
    keys = _public_keys(public_key)
    if not keys:
        raise _no_public_key(what)
    raw = _decode_signature(signature, what)
    for key in keys:
        try:
            key.verify(raw, data)
        except InvalidSignature:
            continue
        return
    trusted = ", ".join(key_id(key) for key in keys)
    raise VerificationError(
        f"{what} does not match its signature (trusted key {trusted}): it was "
        "changed after signing, truncated, or signed with another key. It was "
        "rejected; recompile and re-publish the release with the right key."
    )


def _decode_signature(signature: Union[bytes, str], what: str) -> bytes:
    """The raw bytes of a base64 signature, or a VerificationError naming ``what``."""
    text = (
        signature.encode("ascii", "replace")
        if isinstance(signature, str)
        else signature
    )
    try:
        return base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise VerificationError(
            f"{what} has a signature that is not valid base64, so it was rejected."
        ) from None


def _no_public_key(what: str) -> VerificationError:
    return VerificationError(
        f"{what} is signed but no public key is configured to check it; "
        "configure the public key made by 'tenfra keygen'."
    )


def _check_signature_pure(
    data: bytes,
    signature: Union[bytes, str],
    public_key: Union[PublicKeyLike, Sequence[PublicKeyLike], None],
    *,
    what: str,
) -> None:
    """:func:`check_signature` through python-ecdsa (pure Python, verify only).

    The agent zipapp cannot carry the compiled ``cryptography``; it bundles
    the maintained pure-Python ``ecdsa`` package instead.  Keys are PEM bytes
    or paths to PEM files.
    """
    from ecdsa import BadSignatureError, VerifyingKey  # type: ignore[import-untyped]

    sources = list(public_key) if isinstance(public_key, (list, tuple)) else []
    if public_key is not None and not isinstance(public_key, (list, tuple)):
        sources = [public_key]
    if not sources:
        raise _no_public_key(what)
    raw = _decode_signature(signature, what)
    for source in sources:
        pem = source if isinstance(source, bytes) else Path(str(source)).read_bytes()
        try:
            key = VerifyingKey.from_pem(pem.decode("ascii"))
        except Exception:
            raise UserError(
                "The configured public key is not a PEM ed25519 public key; use the "
                "'.pub' file made by 'tenfra keygen'."
            ) from None
        if key.curve.name != "Ed25519":
            raise UserError("The configured public key is not an ed25519 key.")
        try:
            key.verify(raw, data)
        except BadSignatureError:
            continue
        return
    raise VerificationError(
        f"{what} does not match its signature: it was changed after signing, "
        "truncated, or signed with another key. It was rejected; recompile and "
        "re-publish the release with the right key."
    )


# -- verification -----------------------------------------------------------------


def _parse_json(data: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise VerificationError(
            f"{what} is not valid JSON (truncated or corrupted), so it was rejected."
        ) from None
    if not isinstance(value, dict):
        raise VerificationError(f"{what} is not a JSON object, so it was rejected.")
    if canonical_json(value) != data:
        raise VerificationError(
            f"{what} is not in tenfra's canonical JSON form, so it was rejected; "
            "releases must be written by 'tenfra compile'."
        )
    return value


_BUNDLE_TYPES: dict[str, Any] = {
    "format": int,
    "host": str,
    "release": str,
    "sequence": int,
    "created": str,
    "expires": str,
    "recipes": dict,
    "vars": dict,
    "groups": list,
    "otherHosts": dict,
    "sitePlugins": dict,
    "plugins": dict,
    "assets": list,
    "run": dict,
}

_MANIFEST_TYPES: dict[str, Any] = {
    "format": int,
    "release": str,
    "sequence": int,
    "created": str,
    "expires": str,
    "plugins": dict,
    "hosts": dict,
    "assets": list,
    "keyId": (str, type(None)),
}


def _check_shape(value: dict[str, Any], types: Mapping[str, Any], what: str) -> None:
    if value.get("format") != FORMAT:
        raise VerificationError(
            f"{what} has format {value.get('format')!r}, but this tenfra reads "
            f"format {FORMAT}; upgrade the agent or recompile with a matching tenfra."
        )
    for key, kind in types.items():
        if key not in value:
            raise VerificationError(
                f"{what} lacks the key {key!r}, so it was rejected."
            )
        item = value[key]
        if not isinstance(item, kind) or (kind is int and isinstance(item, bool)):
            raise VerificationError(
                f"{what} has a wrong type for {key!r}, so it was rejected."
            )
    for key in ("created", "expires"):
        try:
            parse_time(value[key])
        except ValueError:
            raise VerificationError(
                f"{what} has an invalid {key!r} time {value[key]!r}, so it was "
                "rejected."
            ) from None


def _check_names(names: Any, what: str, label: str) -> None:
    for name in names:
        if not isinstance(name, str) or not storage.is_safe_key(name):
            raise VerificationError(
                f"{what} lists the {label} {name!r}, which could escape its folder; "
                "it was rejected."
            )


def _check_digests(digests: Any, what: str) -> None:
    for item in digests:
        if not is_sha256(item):
            raise VerificationError(
                f"{what} lists {item!r}, which is not a sha256 digest; it was rejected."
            )


def _check_bundle_content(bundle: dict[str, Any], what: str) -> None:
    if not is_release_id(bundle["release"]):
        raise VerificationError(
            f"{what} has an invalid release id, so it was rejected."
        )
    _check_digests(bundle["assets"], what)
    _check_names(bundle["sitePlugins"], what, "site plugin file")
    _check_digests(bundle["sitePlugins"].values(), what)
    for recipe_id, entry in bundle["recipes"].items():
        _check_names([recipe_id], what, "recipe id")
        if not isinstance(entry, dict) or not isinstance(entry.get("source"), str):
            raise VerificationError(
                f"{what}: recipe {recipe_id!r} has no source text; it was rejected."
            )
        assets = entry.get("assets", {})
        if not isinstance(assets, dict):
            raise VerificationError(
                f"{what}: recipe {recipe_id!r} has a malformed asset list."
            )
        _check_names(assets, what, f"asset of recipe {recipe_id!r}")
        _check_digests(assets.values(), what)
        _check_names([entry.get("path", "")], what, "recipe path")
    listed = set(bundle["assets"])
    used = set(bundle["sitePlugins"].values())
    for entry in bundle["recipes"].values():
        used.update(entry.get("assets", {}).values())
    if not used <= listed:
        raise VerificationError(
            f"{what} refers to assets it does not list, so it was rejected."
        )


def is_release_id(text: object) -> bool:
    """Whether ``text`` looks like a release id (20 lower-case hex characters)."""
    return isinstance(text, str) and re.fullmatch(r"[0-9a-f]{20}", text) is not None


def verify_bundle(
    bundle_bytes: bytes,
    signature: Union[bytes, str, None],
    public_key: Union[PublicKeyLike, Sequence[PublicKeyLike], None],
    *,
    host: str,
    min_sequence: int,
    now: Union[dt.datetime, float, None],
    current_release: Optional[str] = None,
    allow_unsigned: bool = False,
) -> dict[str, Any]:
    """Verify a host's bundle before anything in it is used, and return it parsed.

    Checks, in order: the signature (base64 ed25519 over the exact bytes;
    ``public_key`` may be a list for key rotation), canonical JSON, the format
    and the type of every key, that the bundle is for ``host``, that its
    sequence is greater than ``min_sequence`` (the sequence of the release the
    host applied last; 0 for none) or equal to it for the same release
    (``current_release``, a re-apply), that it has not expired at ``now``
    (a datetime or a POSIX timestamp; None means the current time), and that
    every name and digest in it is safe to use as a file name.

    ``allow_unsigned`` accepts a bundle without signature (a release compiled
    with ``--unsigned``); a signature that is present is always checked.

    Raises :class:`VerificationError` with one sentence saying what was wrong.
    """
    what = f"The bundle for host {host!r}"
    check_signature(
        bundle_bytes,
        signature,
        public_key,
        what=what,
        allow_unsigned=allow_unsigned,
    )
    bundle = _parse_json(bundle_bytes, what)
    _check_shape(bundle, _BUNDLE_TYPES, what)
    if bundle["host"] != host:
        raise VerificationError(
            f"{what} was compiled for host {bundle['host']!r}; a host applies only "
            "its own bundle, so it was rejected."
        )
    sequence = bundle["sequence"]
    if sequence < min_sequence or (
        sequence == min_sequence and bundle["release"] != current_release
    ):
        raise VerificationError(
            f"{what} has sequence {sequence}, but sequence {min_sequence} was "
            "already applied; older or replayed releases are rejected. Publish a "
            "newer release (tenfra compile) instead of an old one."
        )
    moment = _as_datetime(now)
    expires = parse_time(bundle["expires"])
    if moment >= expires:
        raise VerificationError(
            f"{what} (release {bundle['release']}, sequence {sequence}) expired at "
            f"{bundle['expires']}; recompile the release (tenfra compile) to renew "
            "it."
        )
    _check_bundle_content(bundle, what)
    return bundle


def verify_manifest(
    manifest_bytes: bytes,
    signature: Union[bytes, str, None],
    public_key: Union[PublicKeyLike, Sequence[PublicKeyLike], None],
    *,
    now: Union[dt.datetime, float, None] = None,
    check_expiry: bool = False,
    allow_unsigned: bool = False,
) -> dict[str, Any]:
    """Verify a release manifest (signature, form, format) and return it parsed.

    ``check_expiry`` also refuses a manifest that expired at ``now``.  Raises
    :class:`VerificationError`.
    """
    what = "The release manifest"
    check_signature(
        manifest_bytes,
        signature,
        public_key,
        what=what,
        allow_unsigned=allow_unsigned,
    )
    manifest = _parse_json(manifest_bytes, what)
    _check_shape(manifest, _MANIFEST_TYPES, what)
    if not is_release_id(manifest["release"]):
        raise VerificationError(
            f"{what} has an invalid release id, so it was rejected."
        )
    _check_names(manifest["hosts"], what, "host")
    _check_digests(manifest["assets"], what)
    for host, digest in manifest["hosts"].items():
        if not (isinstance(digest, str) and is_sha256(digest.removeprefix("sha256:"))):
            raise VerificationError(
                f"{what} has an invalid digest for host {host!r}, so it was rejected."
            )
    if check_expiry and _as_datetime(now) >= parse_time(manifest["expires"]):
        raise VerificationError(
            f"Release {manifest['release']} expired at {manifest['expires']}; "
            "recompile it (tenfra compile) to renew it."
        )
    return manifest


def verify_asset(data: bytes, digest: str) -> None:
    """Check that ``data`` hashes to ``digest`` (hex sha256); raise otherwise."""
    actual = sha256_hex(data)
    if actual != digest:
        raise VerificationError(
            f"Asset {digest} has the wrong content (its sha256 is {actual}); the "
            "copy in storage or in transit is corrupted, so it was not used."
        )


# -- reading releases from storage ---------------------------------------------------


@attrs.frozen
class ReleaseRef:
    """A release folder under a storage URL."""

    name: str  # "<NNNNNNNNNN>-<id>"
    sequence: int
    release: str


def ref_from_name(name: str) -> Optional[ReleaseRef]:
    """A :class:`ReleaseRef` for a release folder name, or None."""
    parsed = parse_release_name(name)
    if parsed is None:
        return None
    return ReleaseRef(name=name.strip(), sequence=parsed[0], release=parsed[1])


def read_latest(url: str) -> Optional[ReleaseRef]:
    """The release named by ``BASE/LATEST``, or None when there is none yet."""
    fs, root = storage.open_fs(url)
    return _read_latest(fs, root)


def _read_latest(fs: AbstractFileSystem, root: str) -> Optional[ReleaseRef]:
    data = storage.read_optional(fs, storage.join(root, LATEST))
    if data is None:
        return None
    ref = ref_from_name(data.decode("utf-8", "replace"))
    if ref is None:
        raise StorageError(
            f"{storage.join(root, LATEST)} does not name a release "
            f"({data[:60]!r}); rewrite it or recompile."
        )
    return ref


def list_releases(url: str) -> list[ReleaseRef]:
    """Every complete release under ``url`` (one with a manifest), oldest first."""
    fs, root = storage.open_fs(url)
    return _list_releases(fs, root)


def _list_releases(
    fs: AbstractFileSystem, root: str, *, complete: bool = True
) -> list[ReleaseRef]:
    """Release folders under ``root``; ``complete`` keeps those with a manifest."""
    refs = []
    folder = storage.join(root, RELEASES)
    for name in storage.list_dir(fs, folder):
        ref = ref_from_name(name)
        if ref is None:
            continue
        if not complete or storage.exists(
            fs, storage.join(folder, f"{name}/{MANIFEST}")
        ):
            refs.append(ref)
    return sorted(refs, key=lambda r: (r.sequence, r.release))


def _signature(fs: AbstractFileSystem, path: str) -> Optional[bytes]:
    data = storage.read_optional(fs, path + SIG)
    return data.strip() if data is not None else None


class Release:
    """One release read from storage: its manifest, and access to bundles and assets.

    Build it with :func:`open_release`.  Nothing is verified here: pass the
    bytes and signatures to :func:`verify_manifest` and :func:`verify_bundle`.
    """

    def __init__(
        self,
        fs: AbstractFileSystem,
        base: str,
        ref: ReleaseRef,
        manifest_bytes: bytes,
        manifest_signature: Optional[bytes],
    ) -> None:
        self.fs = fs
        self.base = base
        self.ref = ref
        self.manifest_bytes = manifest_bytes
        self.manifest_signature = manifest_signature
        try:
            manifest = json.loads(manifest_bytes.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise StorageError(
                f"The manifest of release {ref.name} is not valid JSON; the release "
                "is damaged, recompile it."
            ) from None
        if not isinstance(manifest, dict):
            raise StorageError(f"The manifest of release {ref.name} is not an object.")
        self.manifest: dict[str, Any] = manifest

    @property
    def name(self) -> str:
        return self.ref.name

    @property
    def hosts(self) -> list[str]:
        return sorted(self.manifest.get("hosts", {}))

    def _folder(self) -> str:
        return storage.join(self.base, f"{RELEASES}/{self.ref.name}")

    def bundle(self, host: str) -> tuple[bytes, Optional[bytes]]:
        """``(bundle bytes, signature or None)`` of ``host``; KeyError if absent."""
        if host not in self.manifest.get("hosts", {}):
            raise KeyError(host)
        path = storage.join(self._folder(), storage.safe_key(HOSTS, f"{host}.json"))
        return storage.read_bytes(self.fs, path), _signature(self.fs, path)

    def asset(self, digest: str) -> bytes:
        """The bytes of an asset (not checked: see :func:`verify_asset`)."""
        if not is_sha256(digest):
            raise StorageError(f"{digest!r} is not a sha256 digest.")
        return storage.read_bytes(
            self.fs, storage.join(self.base, f"{ASSETS}/{digest}")
        )


def _resolve(
    fs: AbstractFileSystem, base: str, release: Union[str, int, None]
) -> ReleaseRef:
    if release is None:
        latest = _read_latest(fs, base)
        if latest is None:
            raise StorageError(
                f"No release at {storage._describe(fs, base)} (no LATEST file); "
                "run 'tenfra compile --out' there first."
            )
        return latest
    text = str(release).strip()
    direct = ref_from_name(text)
    if direct is not None:
        return direct
    refs = _list_releases(fs, base)
    if text.isdigit():
        found = [r for r in refs if r.sequence == int(text)]
    else:
        found = [r for r in refs if r.release.startswith(text.lower())]
    if len(found) == 1:
        return found[0]
    known = ", ".join(r.name for r in refs[-5:]) or "none"
    if not found:
        raise StorageError(
            f"No release {text!r} at {storage._describe(fs, base)}; the latest "
            f"releases are: {known}."
        )
    raise StorageError(
        f"{text!r} names several releases at {storage._describe(fs, base)}; give "
        "the full release folder name."
    )


def open_release(url: str, release: Union[str, int, None] = None) -> Release:
    """Open a release under the storage URL ``url``.

    ``url`` is the base URL the compiler wrote to, or a release folder itself
    (``BASE/releases/<NNNNNNNNNN>-<id>``).  ``release`` picks one release under
    a base: a folder name, a sequence number, or a release id (or a unique
    prefix); None means the one ``LATEST`` names.  Raises
    :class:`StorageError` when it does not exist.
    """
    fs, root = storage.open_fs(url)
    last = root.rstrip("/").rsplit("/", 1)[-1]
    own = ref_from_name(last)
    if release is None and own is not None:
        parent = root.rstrip("/").rsplit("/", 1)[0]
        base = parent.rsplit("/", 1)[0] if parent.endswith(f"/{RELEASES}") else parent
        ref = own
    else:
        base = root
        ref = _resolve(fs, base, release)
    path = storage.join(base, f"{RELEASES}/{ref.name}/{MANIFEST}")
    data = storage.read_optional(fs, path)
    if data is None:
        raise StorageError(
            f"Release {ref.name} has no manifest at {storage._describe(fs, path)}; "
            "it is incomplete or was removed. Recompile it."
        )
    return Release(fs, base, ref, data, _signature(fs, path))


def read_bundle(url: str, release_dir: str, host: str) -> tuple[bytes, Optional[bytes]]:
    """``(bundle bytes, signature or None)`` of ``host`` in release ``release_dir``.

    ``url`` is the base URL, ``release_dir`` a release folder name as found in
    ``LATEST`` or :func:`list_releases`.  Raises ``FileNotFoundError`` when the
    host has no bundle in that release.
    """
    ref = ref_from_name(release_dir)
    if ref is None:
        raise StorageError(f"{release_dir!r} is not a release folder name.")
    fs, root = storage.open_fs(url)
    key = storage.safe_key(RELEASES, ref.name, HOSTS, f"{host}.json")
    path = storage.join(root, key)
    return storage.read_bytes(fs, path), _signature(fs, path)


def read_asset(url: str, digest: str) -> bytes:
    """The bytes of asset ``digest`` (hex sha256) under the base ``url``."""
    if not is_sha256(digest):
        raise StorageError(f"{digest!r} is not a sha256 digest.")
    fs, root = storage.open_fs(url)
    return storage.read_bytes(fs, storage.join(root, f"{ASSETS}/{digest}"))
