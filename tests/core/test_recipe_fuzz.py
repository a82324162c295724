"""Fuzzed recipes: loading either works or raises a located user error."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tenfra.errors import UserError
from tenfra.pluginmanager import PluginManager
from tenfra.recipe import load_recipe_text
from tenfra.yamlio import dump_yaml

MANAGER = PluginManager()

KEYS = st.sampled_from(
    [
        "name",
        "tasks",
        "vars",
        "inputs",
        "handlers",
        "dependencies",
        "if",
        "debug",
        "loop",
        "try",
        "items",
        "msg",
        "notify",
        "out",
        "set",
        "assert",
        "that",
        "type",
        "default",
        "retries",
        "switch",
        "cases",
        "recipe",
        "id",
        "x",
    ]
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.floats(allow_nan=False, allow_infinity=False, width=16),
    st.sampled_from(["", "a", "${{ x }}", "${{", "x=1 y", "msg=hi", "${% if %}"]),
    st.text(max_size=8),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(KEYS, inner, max_size=4)
    ),
    max_leaves=25,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(KEYS, VALUES, max_size=5))
def test_structured_fuzz(document: dict[str, Any]) -> None:
    text = dump_yaml(document)
    try:
        load_recipe_text(text, "fuzz", source="fuzz.yaml", plugin_manager=MANAGER)
    except UserError as exc:
        assert str(exc).startswith("fuzz.yaml")


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet="-:{}[]\"' \n\tabxy$%=#|>&*!1", max_size=60))
def test_text_fuzz(text: str) -> None:
    try:
        load_recipe_text(text, "fuzz", source="fuzz.yaml", plugin_manager=MANAGER)
    except UserError as exc:
        assert str(exc).startswith("fuzz.yaml")
