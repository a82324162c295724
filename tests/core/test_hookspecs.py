"""Meta-tests: every hook is named, documented and referenced like the rest."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from tenfra import hookspecs

ROOT = Path(__file__).resolve().parents[2]
SPECS = [
    (name, function)
    for name, function in vars(hookspecs).items()
    if inspect.isfunction(function) and hasattr(function, "tenfra_spec")
]


def test_there_are_hookspecs() -> None:
    names = {name for name, _ in SPECS}
    assert {
        "tenfra_add_resource_types",
        "tenfra_before_recipe",
        "tenfra_after_compile",
        "tenfra_report_received",
        "tenfra_add_provider_blueprints",
        "tenfra_add_cli_commands",
    } <= names


def test_every_function_in_the_module_is_a_hookspec() -> None:
    plain = [
        name
        for name, obj in vars(hookspecs).items()
        if inspect.isfunction(obj)
        and obj.__module__ == hookspecs.__name__
        and not hasattr(obj, "tenfra_spec")
    ]
    assert plain == []


@pytest.mark.parametrize(("name", "function"), SPECS, ids=[n for n, _ in SPECS])
def test_hook_name_has_the_prefix(name: str, function: object) -> None:
    assert name.startswith("tenfra_"), f"{name} must start with tenfra_"


@pytest.mark.parametrize(("name", "function"), SPECS, ids=[n for n, _ in SPECS])
def test_hook_documents_when_every_parameter_and_the_return(
    name: str, function: object
) -> None:
    doc = inspect.getdoc(function) or ""
    assert doc, f"{name} has no docstring"
    assert re.search(r"\bcalled\b", doc, re.IGNORECASE), (
        f"{name}: say when it is called"
    )
    for parameter in inspect.signature(function).parameters:  # type: ignore[arg-type]
        assert f":param {parameter}:" in doc, (
            f"{name}: parameter {parameter!r} undocumented"
        )
    assert ":return:" in doc, f"{name}: say what the return value means"
    if function.tenfra_spec["firstresult"]:  # type: ignore[attr-defined]
        assert "This is a first-result hook" in doc, (
            f"{name}: first-result hooks say so in the fixed sentence"
        )


def test_hooks_reference_is_generated_from_the_specs() -> None:
    from tenfra.docgen import render_hooks

    committed = (ROOT / "docs" / "reference" / "hooks.md").read_text(encoding="utf-8")
    assert committed == render_hooks(), (
        "docs/reference/hooks.md is stale; run: python scripts/gen_docs.py"
    )
