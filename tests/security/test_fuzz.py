"""Fuzzing with hypothesis: API bodies and YAML files never give a 500 or a
traceback to the user, only clear errors.

tests/core/test_recipe_fuzz.py already fuzzes recipe files; this module
fuzzes every POST body of the agent API and the admin login (structure-aware
mutations of valid bodies, arbitrary JSON, arbitrary bytes and headers), and
the other YAML files people write: inventories, provider configurations,
agent configurations and test suites.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tenfra.errors import TenfraError, UserError

from .conftest import make_report

FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
    st.sampled_from(
        [
            "",
            "web-a",
            "web-b",
            "../..",
            "\x00",
            "ok",
            "changed",
            "failed",
            "2026-01-01T00:00:00Z",
            "not a time",
            "${{ 7 * 7 }}",
            "x" * 300,
        ]
    ),
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.dictionaries(st.text(max_size=12), inner, max_size=5),
    ),
    max_leaves=30,
)

VALID: dict[str, Callable[[], dict[str, Any]]] = {
    "/api/v1/reports": lambda: make_report("web-a"),
    "/api/v1/logs": lambda: {"host": "web-a", "lines": ["a", {"message": "b"}]},
    "/api/v1/facts": lambda: {"host": "web-a", "facts": {"os": "linux"}},
    "/api/v1/enroll": lambda: {"host": "web-a", "token": "x" * 20},
}


HEADER_TEXT = st.text(
    alphabet=st.characters(
        min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"
    ),
    max_size=60,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, Any]:
    """A valid body of one endpoint with one to three parts replaced."""
    endpoint = draw(st.sampled_from(sorted(VALID)))
    body: Any = VALID[endpoint]()
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(body)
        path = draw(st.sampled_from(paths))
        replacement = draw(JSON)
        if not path:
            body = replacement
            break
        parent = body
        for step in path[:-1]:
            parent = parent[step]
        if draw(st.booleans()) and isinstance(parent, dict):
            parent.pop(path[-1], None)  # drop a key
        else:
            parent[path[-1]] = replacement
    return endpoint, copy.deepcopy(body)


def check_answer(answer: Any, where: str) -> None:
    assert answer.status_code < 500, (where, answer.status_code, answer.data[:300])
    assert b"Traceback" not in answer.data, where
    if answer.status_code >= 400:
        error = answer.get_json()["error"]
        assert isinstance(error, str) and error.endswith((".", "?", ")")), error


@pytest.fixture
def fuzz_app(app: Any, writer: Any) -> Any:
    writer.publish({"web-a": {"a": b"a"}})
    app.scan()
    app.credential = app.enroll("web-a")
    return app


def test_mutated_api_bodies_never_give_a_500(fuzz_app: Any) -> None:
    statuses: set[int] = set()

    @FUZZ
    @given(mutated())
    def run(case: tuple[str, Any]) -> None:
        endpoint, body = case
        headers = {}
        if isinstance(body, dict) and isinstance(body.get("id"), str):
            headers["Idempotency-Key"] = body["id"]
        answer = fuzz_app.post(
            endpoint, fuzz_app.credential, json=body, headers=headers
        )
        check_answer(answer, endpoint)
        statuses.add(answer.status_code)

    run()
    # The mutations reach both sides: bodies still accepted, and refusals.
    assert statuses & {200, 201} and statuses & {400, 403, 413, 422}, statuses


def test_arbitrary_bodies_and_headers_never_give_a_500(fuzz_app: Any) -> None:
    @FUZZ
    @given(
        st.sampled_from([*sorted(VALID), "/admin/login"]),
        st.one_of(st.binary(max_size=200), JSON.map(lambda v: json.dumps(v).encode())),
        st.sampled_from(
            [
                "application/json",
                "application/json; charset=latin-1",
                "text/plain",
                "application/x-www-form-urlencoded",
                "multipart/form-data; boundary=x",
                "",
            ]
        ),
        st.one_of(st.none(), HEADER_TEXT),
        st.one_of(st.none(), HEADER_TEXT),
    )
    def run(
        endpoint: str,
        body: bytes,
        content_type: str,
        key: Any,
        authorization: Any,
    ) -> None:
        headers = {"Content-Type": content_type} if content_type else {}
        if key is not None:
            headers["Idempotency-Key"] = key
        headers["Authorization"] = (
            f"Bearer {fuzz_app.credential}" if authorization is None else authorization
        )
        answer = fuzz_app.client.post(endpoint, data=body, headers=headers)
        assert answer.status_code < 500, (endpoint, answer.data[:300])
        assert b"Traceback" not in answer.data

    run()


def test_fuzzed_query_strings_and_digests_never_give_a_500(fuzz_app: Any) -> None:
    @FUZZ
    @given(
        st.sampled_from(
            [
                "/api/v1/release",
                "/api/v1/bundle",
                "/api/v1/assets/{}",
                "/admin/hosts/{}",
                "/bootstrap/install.sh",
                "/bootstrap/agent.pyz",
            ]
        ),
        st.text(
            alphabet=st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=40
        ),
        HEADER_TEXT,
    )
    def run(template: str, part: str, query: str) -> None:
        from urllib.parse import quote

        path = template.format(quote(part, safe="")) + "?" + quote(query, safe="=&")
        answer = fuzz_app.get(
            path,
            fuzz_app.credential,
            headers={"If-None-Match": query},
        )
        assert answer.status_code < 500, (path, answer.data[:300])
        assert b"Traceback" not in answer.data

    run()


# -- YAML files people write ----------------------------------------------------------

YAML_KEYS = st.sampled_from(
    [
        "hosts",
        "groups",
        "vars",
        "varsSources",
        "hostSources",
        "database",
        "url",
        "releases",
        "auth",
        "users",
        "limits",
        "maxBody",
        "server",
        "hooks",
        "provider",
        "host",
        "interval",
        "splay",
        "runner",
        "tests",
        "name",
        "recipe",
        "file",
        "raw",
        "x",
    ]
)
YAML_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 10**12),
    st.floats(allow_nan=False, allow_infinity=False, width=16),
    st.sampled_from(
        ["", "web-[1:3]", "~^db", "!x", "sqlite:///x.db", "1MB", "10s", "../x", "a&b"]
    ),
    st.text(max_size=8),
)
YAML_VALUES = st.recursive(
    YAML_SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(YAML_KEYS, inner, max_size=4)
    ),
    max_leaves=25,
)
YAML_TEXT = st.text(alphabet="-:{}[]\"' \n\tabxy$%=#|>&*!1.\\", max_size=80)


def _loaders(tmp: Path) -> dict[str, Callable[[str], Any]]:
    from tenfra.agent.state import StateDir
    from tenfra.inventory import load_inventory_text
    from tenfra.provider.config import ProviderConfig
    from tenfra.testsuite import load_suite

    def agent_config(text: str) -> Any:
        state = StateDir(tmp / "agent")
        state.root.mkdir(exist_ok=True)
        (state.root / "agent.yaml").write_text(text, encoding="utf-8")
        return state.load_config()

    def suite(text: str) -> Any:
        path = tmp / "fuzz.test.yaml"
        path.write_text(text, encoding="utf-8")
        return load_suite(path)

    return {
        "inventory": lambda text: load_inventory_text(
            text, "fuzz.yaml", base_dir=tmp, environ={}
        ),
        "provider config": lambda text: ProviderConfig.from_text(text, "fuzz.yaml"),
        "agent config": agent_config,
        "test suite": suite,
    }


def _only_user_errors(load: Callable[[str], Any], text: str, what: str) -> None:
    try:
        load(text)
    except UserError as exc:
        message = str(exc)
        assert "fuzz" in message or "agent.yaml" in message, (what, message)
        assert "Traceback" not in message
    except TenfraError as exc:  # e.g. a source that cannot be read: still clear
        assert str(exc).strip(), what


@pytest.mark.parametrize(
    "what", ["inventory", "provider config", "agent config", "test suite"]
)
def test_fuzzed_yaml_documents_give_located_user_errors(
    what: str, tmp_path: Path
) -> None:
    from tenfra.yamlio import dump_yaml

    load = _loaders(tmp_path)[what]

    @FUZZ
    @given(st.dictionaries(YAML_KEYS, YAML_VALUES, max_size=5))
    def structured(document: dict[str, Any]) -> None:
        _only_user_errors(load, dump_yaml(document), what)

    @FUZZ
    @given(YAML_TEXT)
    def text(raw: str) -> None:
        _only_user_errors(load, raw, what)

    structured()
    text()
