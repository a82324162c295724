"""Agent installation: the install script, the agent zipapp and the public key.

``curl -fsSL https://PROVIDER/bootstrap/install.sh | sudo sh -s -- --token T``
downloads the agent zipapp (authorised by the bootstrap token, which is not
spent by the download), the release public key, enrols the host and installs
the systemd unit.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from pathlib import Path

from flask import Blueprint, Response, render_template, request, send_file

from tenfra.provider.app import ApiError, state

logger = logging.getLogger(__name__)

blueprint = Blueprint("bootstrap", __name__, url_prefix="/bootstrap")

_build_lock = threading.Lock()


_SAFE_URL = re.compile(r"^https?://[A-Za-z0-9.:\[\]_-]+(/[A-Za-z0-9._~/-]*)?$")


def _base_url() -> str:
    """publicUrl, or the URL this request came in on when it is plain and safe."""
    configured = state().config.public_url
    base = configured or request.url_root.rstrip("/")
    if not _SAFE_URL.match(base):
        raise ApiError(
            400,
            f"Cannot build an installer for the URL {base!r}; set publicUrl in the "
            "provider configuration.",
        )
    return base


@blueprint.get("/install.sh")
def install_sh() -> Response:
    """The installer script; it holds no secret (the token is passed to it)."""
    config = state().config
    script = render_template(
        "install.sh",
        provider=_base_url(),
        install_dir=config.agent.install_dir,
        has_key=config.releases.public_key is not None,
    )
    return Response(script, mimetype="text/x-shellscript")


@blueprint.get("/release.pub")
def public_key() -> Response:
    """The release signing public key (public by nature), when configured."""
    path = state().config.releases.public_key
    if path is None:
        raise ApiError(
            404,
            "This provider has no releases.publicKey configured; give the agent the "
            "public key from 'tenfra keygen' yourself.",
        )
    return send_file(path, mimetype="application/x-pem-file", max_age=300)


def _token_valid(token: str) -> bool:
    from tenfra.provider.auth import secret_hash
    from tenfra.provider.models import BootstrapToken, now

    row = BootstrapToken.get_or_none(BootstrapToken.token_hash == secret_hash(token))
    return row is not None and row.used is None and row.expires > now()


def _authorise_download() -> None:
    """A valid (unused) bootstrap token, a host credential or an admin session."""
    from tenfra.provider.admin import current_user
    from tenfra.provider.api import authenticate, unauthorized

    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer ") and "." not in header[7:].strip():
        if _token_valid(header[7:].strip()):
            return
        raise unauthorized(
            "The bootstrap token is unknown, used or expired; create a new one "
            "with 'tenfra provider token --host NAME'."
        )
    if not header and current_user() is not None:
        return
    authenticate()


def agent_pyz_path() -> Path:
    """The configured zipapp, or one built once per process with tenfra.agent.zipapp."""
    configured = state().config.agent.pyz
    if configured:
        path = Path(configured)
        if not path.is_file():
            raise ApiError(
                503,
                f"agent.pyz {configured!r} (provider.yaml) does not exist; build it "
                "with 'tenfra agent bundle' and fix the path.",
            )
        return path
    cache = Path(os.environ.get("TENFRA_PROVIDER_CACHE", "/var/cache/tenfra-provider"))
    target = cache / "agent.pyz"
    with _build_lock:
        if not target.is_file():
            try:
                from tenfra.agent.zipapp import build_zipapp
            except ImportError:
                raise ApiError(
                    503,
                    "This provider cannot build the agent zipapp; set agent.pyz in "
                    "provider.yaml to a file made by 'tenfra agent bundle'.",
                ) from None
            logger.info("building the agent zipapp into %s", target)
            build_zipapp(target)
    return target


@blueprint.get("/agent.pyz")
def agent_pyz() -> Response:
    """The agent as one file; needs a bootstrap token or a host credential."""
    _authorise_download()
    path = agent_pyz_path()
    return send_file(
        path,
        mimetype="application/zip",
        as_attachment=True,
        download_name="tenfra.pyz",
        max_age=0,
    )
