"""Fuzzed API bodies: a clear 4xx JSON error or a success, never a 500."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
REPORT_KEYS = ["id", "host", "started", "finished", "status", "recipes", "release"]
REPORTISH = st.fixed_dictionaries(
    {},
    optional={key: JSON | st.just("web-1") | st.just("ok") for key in REPORT_KEYS},
)
FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """Fuzzing runs against SQLite (the API tests cover PostgreSQL)."""
    return f"sqlite:///{tmp_path / 'fuzz.db'}"


@pytest.fixture
def sqlite_provider(make_provider: Any) -> Any:
    provider = make_provider()
    provider.credential = provider.enroll("web-1")
    return provider


def _check(answer: Any) -> None:
    assert answer.status_code < 500, answer.data[:300]
    if answer.status_code >= 400:
        error = answer.get_json()["error"]
        assert error and "Traceback" not in error


@FUZZ
@given(body=JSON | REPORTISH)
def test_fuzzed_reports(sqlite_provider: Any, body: Any) -> None:
    _check(
        sqlite_provider.post("/api/v1/reports", sqlite_provider.credential, json=body)
    )


@FUZZ
@given(body=JSON)
def test_fuzzed_enrolment_logs_and_facts(sqlite_provider: Any, body: Any) -> None:
    _check(sqlite_provider.post("/api/v1/enroll", json=body))
    for path in ("/api/v1/logs", "/api/v1/facts"):
        _check(sqlite_provider.post(path, sqlite_provider.credential, json=body))


@FUZZ
@given(raw=st.binary(max_size=200))
def test_fuzzed_raw_bytes(sqlite_provider: Any, raw: bytes) -> None:
    answer = sqlite_provider.client.post(
        "/api/v1/reports",
        data=raw,
        content_type="application/json",
        headers={"Authorization": f"Bearer {sqlite_provider.credential}"},
    )
    _check(answer)
    json.dumps(answer.get_json())
