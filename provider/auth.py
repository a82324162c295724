"""Secrets of the provider: admin password hashes, host credentials, tokens, CSRF."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
from typing import Optional

logger = logging.getLogger(__name__)

# scrypt cost: 2**14 x 8 x 1 uses 16 MiB and takes ~50 ms, once per login.
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str) -> str:
    """A salted scrypt hash: ``scrypt$N$r$p$salt$hash``."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode("utf-8"),
        salt=salt,
        n=SCRYPT_N,
        r=SCRYPT_R,
        p=SCRYPT_P,
        dklen=32,
    )
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def check_hash_format(stored: str) -> Optional[str]:
    """Why ``stored`` is not a usable password hash, or None when it is."""
    parts = stored.split("$")
    hint = "create one with 'tenfra provider hash-password'"
    if len(parts) != 6 or parts[0] != "scrypt":
        return f"passwordHash is not a scrypt hash (scrypt$N$r$p$salt$hash); {hint}"
    try:
        n, r, p = (int(x) for x in parts[1:4])
        _unb64(parts[4])
        _unb64(parts[5])
    except ValueError:
        return f"passwordHash is damaged (bad numbers or base64); {hint}"
    if n < 2**10 or n & (n - 1) or r < 1 or p < 1 or n * r > 2**20:
        return f"passwordHash has unusable scrypt parameters N={n} r={r}; {hint}"
    return None


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches ``stored`` (constant-time comparison)."""
    if check_hash_format(stored) is not None:
        return False
    _, n, r, p, salt, expected = stored.split("$")
    digest = hashlib.scrypt(
        password.encode("utf-8"),
        salt=_unb64(salt),
        n=int(n),
        r=int(r),
        p=int(p),
        dklen=len(_unb64(expected)),
        maxmem=256 * 1024 * 1024,
    )
    return hmac.compare_digest(digest, _unb64(expected))


# A dummy hash so an unknown user name costs as much as a wrong password.
_DUMMY_HASH: Optional[str] = None


def dummy_hash() -> str:
    global _DUMMY_HASH
    if _DUMMY_HASH is None:
        _DUMMY_HASH = hash_password(secrets.token_hex(8))
    return _DUMMY_HASH


def secret_hash(secret: str) -> str:
    """SHA-256 of a high-entropy secret (credentials and tokens are 256-bit random)."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def make_credential(host: str) -> tuple[str, str]:
    """A new credential ``<host>.<secret>`` and the hash the provider stores."""
    secret = new_secret()
    return f"{host}.{secret}", secret_hash(secret)


def split_credential(value: str) -> Optional[tuple[str, str]]:
    """``(host, secret)`` of a credential; host names may contain dots."""
    host, dot, secret = value.rpartition(".")
    if not dot or not host or len(secret) < 20:
        return None
    return host, secret


def check_secret(secret: str, stored_hash: Optional[str]) -> bool:
    """Constant-time check of a secret against its stored hash."""
    if not stored_hash:
        hmac.compare_digest(secret_hash(secret), "0" * 64)
        return False
    return hmac.compare_digest(secret_hash(secret), stored_hash)


def fingerprint(secret: str) -> str:
    """A short, shareable fingerprint of an enrolment request secret."""
    return secret_hash(secret)[:16]


def new_csrf_token() -> str:
    return secrets.token_urlsafe(24)


def csrf_matches(expected: Optional[str], given: Optional[str]) -> bool:
    if not expected or not given:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())
