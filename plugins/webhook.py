"""The HTTP webhook report hook: POST a templated body when a condition holds."""

from __future__ import annotations

import json
import logging
import threading
from typing import TYPE_CHECKING, Any, Optional

import attrs

from tenfra import hookimpl
from tenfra.errors import TransportError
from tenfra.reporting import ReportHook
from tenfra.resource import option

if TYPE_CHECKING:
    import jinja2
    import urllib3

logger = logging.getLogger(__name__)

_env_lock = threading.Lock()
_env: Optional[jinja2.Environment] = None
_pool: Optional[urllib3.PoolManager] = None


def template_env() -> jinja2.Environment:
    """A sandboxed Jinja2 environment with tenfra's ``${{ }}`` delimiters."""
    global _env
    with _env_lock:
        if _env is None:
            from jinja2 import StrictUndefined
            from jinja2.sandbox import ImmutableSandboxedEnvironment

            _env = ImmutableSandboxedEnvironment(
                variable_start_string="${{",
                variable_end_string="}}",
                block_start_string="${%",
                block_end_string="%}",
                undefined=StrictUndefined,
                autoescape=False,
                keep_trailing_newline=True,
            )
        return _env


def _check_template(_instance: Any, attribute: Any, value: Optional[str]) -> None:
    if value is None:
        return
    from jinja2 import TemplateSyntaxError

    try:
        template_env().from_string(value)
    except TemplateSyntaxError as exc:
        raise ValueError(
            f"the {attribute.name} template has a syntax error on its line "
            f"{exc.lineno}: {exc.message}"
        ) from None


def _check_condition(_instance: Any, _attribute: Any, value: Optional[str]) -> None:
    if value is None:
        return
    from jinja2 import TemplateSyntaxError

    try:
        template_env().compile_expression(value)
    except TemplateSyntaxError as exc:
        raise ValueError(
            f"the condition {value!r} is not a valid expression: {exc.message}; "
            "write a bare expression such as: report.status == 'failed'"
        ) from None


def _check_url(_instance: Any, _attribute: Any, value: str) -> None:
    if not value.startswith(("http://", "https://")):
        raise ValueError(f"url {value!r} must start with http:// or https://")


def _check_method(_instance: Any, _attribute: Any, value: str) -> None:
    if value not in ("POST", "PUT", "PATCH"):
        raise ValueError(f"method {value!r} must be POST, PUT or PATCH")


@attrs.frozen(kw_only=True)
class WebhookOptions:
    """Options of the ``webhook`` report hook."""

    url: str = option(
        "Where to send the request (http:// or https://).", validator=_check_url
    )
    method: str = option("POST, PUT or PATCH.", default="POST", validator=_check_method)
    headers: dict[str, str] = option("Extra request headers.", factory=dict)
    body: Optional[str] = option(
        "Body template (Jinja2 with ${{ }}); variables: report, host, status, "
        "counts, release, sequence. Default: a JSON summary.",
        default=None,
        validator=_check_template,
    )
    if_: Optional[str] = option(
        "Condition (a bare expression over the same variables); the hook fires "
        "only when it is true. Default: always.",
        default=None,
        validator=_check_condition,
    )
    content_type: str = option("Content-Type of the body.", default="application/json")
    timeout: float = option("Seconds to wait for the receiver.", default=10.0)


def _context(report: dict[str, Any], host: str) -> dict[str, Any]:
    counts = report.get("counts") or {}
    return {
        "report": report,
        "host": host,
        "status": report.get("status"),
        "counts": counts,
        "release": report.get("release"),
        "sequence": report.get("sequence"),
        "failed": counts.get("failed", 0),
        "changed": counts.get("changed", 0),
    }


class Webhook(ReportHook):
    """Send an HTTP request for each run report that matches a condition.

    Example (provider.yaml)::

        hooks:
          - type: webhook
            name: chat
            url: https://chat.example/hooks/abc
            if: status == 'failed'
            body: '{"text": "${{ host }} failed ${{ failed }} task(s)"}'
    """

    name = "webhook"
    Options = WebhookOptions

    def wants(self, report: dict[str, Any], host: str) -> bool:
        condition = self.options.if_
        if condition is None:
            return True
        expression = template_env().compile_expression(condition)
        return bool(expression(**_context(report, host)))

    def render(self, report: dict[str, Any], host: str) -> bytes:
        """The request body for ``report``."""
        context = _context(report, host)
        if self.options.body is None:
            summary = {
                "host": host,
                "report": report.get("id"),
                "status": context["status"],
                "release": context["release"],
                "sequence": context["sequence"],
                "counts": context["counts"],
                "started": report.get("started"),
                "finished": report.get("finished"),
                "error": report.get("error"),
            }
            return json.dumps(summary, sort_keys=True).encode("utf-8")
        text = template_env().from_string(self.options.body).render(**context)
        return text.encode("utf-8")

    def deliver(self, report: dict[str, Any], host: str) -> None:
        import urllib3

        global _pool
        with _env_lock:
            if _pool is None:
                _pool = urllib3.PoolManager(headers={"User-Agent": "tenfra-provider"})
            pool = _pool
        headers = {"Content-Type": self.options.content_type, **self.options.headers}
        body = self.render(report, host)
        try:
            response = pool.request(
                self.options.method,
                self.options.url,
                body=body,
                headers=headers,
                timeout=urllib3.Timeout(total=self.options.timeout),
                retries=False,
                redirect=False,
            )
        except urllib3.exceptions.HTTPError as exc:
            raise TransportError(
                f"Webhook {self.hook_name!r} could not reach {self.options.url}: {exc}."
            ) from None
        if not 200 <= response.status < 300:
            raise TransportError(
                f"Webhook {self.hook_name!r}: {self.options.url} answered "
                f"{response.status}; the delivery will be retried.",
                status=response.status,
            )
        logger.info("webhook %s delivered report of %s", self.hook_name, host)


@hookimpl
def tenfra_add_report_hooks(registry: Any) -> None:
    registry.add_report_hook(Webhook)
