"""Templating: ${{ }} values, native types, conditions, errors, sandbox, plugins."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest

from tenfra.errors import Location, TemplateError
from tenfra.templating import Templar, get_templar, has_template, is_template
from tenfra.variables import Layer, Scope

WHERE = Location("recipes/web.yaml", 4, 12)


@pytest.fixture
def templar() -> Templar:
    return Templar()


SCOPE = {"port": 8080, "hosts": ["a", "b"], "cfg": {"debug": True}, "name": "web"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${{ port }}", 8080),
        ("${{ port + 1 }}", 8081),
        ("  ${{ port }}\n", "  8080\n"),
        ("${{ port }}\n", "8080\n"),
        ("${{ hosts }}", ["a", "b"]),
        ("${{ cfg }}", {"debug": True}),
        ("${{ cfg.debug }}", True),
        ("${{ none }}", None),
        ("port ${{ port }}", "port 8080"),
        ("${{ name }}-${{ port }}", "web-8080"),
        ("${% for h in hosts %}${{ h }};${% endfor %}", "a;b;"),
        ("{{ not a template }}", "{{ not a template }}"),
        ("${{ {'a': {'b': 1}} }}", {"a": {"b": 1}}),
        ("${{ name | upper }}", "WEB"),
    ],
)
def test_render_string(templar: Templar, text: str, expected: Any) -> None:
    assert templar.render(text, {**SCOPE, "none": None}) == expected


def test_render_walks_lists_and_mappings(templar: Templar) -> None:
    value = {"p": "${{ port }}", "l": ["${{ name }}", 3, None], "${{ name }}": "k"}

    assert templar.render(value, SCOPE) == {
        "p": 8080,
        "l": ["web", 3, None],
        "web": "k",
    }


def test_undefined_variable_names_the_variable_and_the_position(
    templar: Templar,
) -> None:
    with pytest.raises(TemplateError) as info:
        templar.render("port ${{ prot }}", SCOPE, WHERE)

    assert str(info.value) == (
        "recipes/web.yaml:4:12: undefined variable 'prot' in 'port ${{ prot }}'; "
        "define it (recipe vars, inputs, inventory or -e) or give a default: "
        "prot | default(...)"
    )


def test_undefined_is_never_an_empty_string(templar: Templar) -> None:
    for text in ("${{ missing }}", "x${{ missing }}x", "${{ missing ~ 'a' }}"):
        with pytest.raises(TemplateError, match="undefined variable 'missing'"):
            templar.render(text, SCOPE, WHERE)


def test_defaults_and_defined_tests_work(templar: Templar) -> None:
    assert templar.render("${{ missing | default(3) }}", SCOPE) == 3
    assert templar.condition("missing is defined", SCOPE) is False


def test_undefined_attribute(templar: Templar) -> None:
    with pytest.raises(TemplateError) as info:
        templar.render("${{ cfg.nope }}", SCOPE, WHERE)

    assert str(info.value).startswith(
        "recipes/web.yaml:4:12: undefined attribute 'nope' in '${{ cfg.nope }}'"
    )


def test_bad_syntax(templar: Templar) -> None:
    with pytest.raises(TemplateError) as info:
        templar.check_syntax({"a": ["${{ port + }}"]}, WHERE)

    assert str(info.value) == (
        "recipes/web.yaml:4:12: bad template syntax in 'port +': unexpected 'end of "
        "template'; check the braces and quotes of the expression"
    )


def test_runtime_errors_are_template_errors(templar: Templar) -> None:
    with pytest.raises(TemplateError) as info:
        templar.render("${{ port / 0 }}", SCOPE, WHERE)

    assert str(info.value) == (
        "recipes/web.yaml:4:12: cannot render '${{ port / 0 }}': ZeroDivisionError: "
        "division by zero; check the values and filters used"
    )


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("port == 8080", True),
        ("'a' in hosts", True),
        ("${{ port > 9000 }}", False),
        (True, True),
        (False, False),
        ("cfg.debug and name == 'web'", True),
    ],
)
def test_conditions_are_bare_expressions(
    templar: Templar, condition: Any, expected: bool
) -> None:
    assert templar.condition(condition, SCOPE, WHERE) is expected


def test_a_condition_must_be_text_or_a_boolean(templar: Templar) -> None:
    with pytest.raises(TemplateError) as info:
        templar.condition(3, SCOPE, WHERE)

    assert str(info.value) == (
        "recipes/web.yaml:4:12: a condition must be an expression or true/false, got "
        "3; write it as text such as: x == 1"
    )


def test_compiled_templates_are_cached(templar: Templar) -> None:
    templar.render("${{ port + 0 }}", SCOPE)
    templar.render("a ${{ port + 0 }}", SCOPE)
    size = len(templar._cache)

    for _ in range(3):
        templar.render("${{ port + 0 }}", SCOPE)
        templar.render("a ${{ port + 0 }}", SCOPE)

    assert len(templar._cache) == size == 2


@pytest.mark.parametrize(
    "text",
    [
        "${{ port }}",
        "${{ cfg.debug }}",
        "a ${{ name }} b ${{ port }} ${{ cfg.debug }} ${{ hosts }} ${{ none }}",
        "${{ cfg }}",
        "${{ nested.x.y }}",
        "${{ f }}",
    ],
)
def test_plain_references_skip_jinja_with_the_same_result(text: str) -> None:
    scope = {**SCOPE, "none": None, "nested": {"x": {"y": 1.5}}, "f": 2.0}
    slow = Templar()
    fast = Templar()

    expected = slow._run_template(slow._compile("value", text, None), scope, text, None)
    result = fast.render(text, scope)

    assert str(result) == expected
    assert fast._cache == {}  # nothing compiled


@pytest.mark.parametrize(
    "text", ["${{ missing }}", "x ${{ cfg.nope }}", "${{ cfg.items }}", "${{ _x }}"]
)
def test_unusual_references_go_through_jinja(templar: Templar, text: str) -> None:
    with contextlib.suppress(TemplateError):
        templar.render(text, {**SCOPE, "_x": 1})

    assert templar._cache != {}


def test_sandbox_refuses_unsafe_attributes_and_mutation() -> None:
    sandbox = Templar(sandboxed=True)

    with pytest.raises(TemplateError, match="not allowed in an untrusted recipe"):
        sandbox.render("${{ ''.__class__.__mro__ }}", SCOPE, WHERE)
    with pytest.raises(TemplateError, match="not allowed in an untrusted recipe"):
        sandbox.render("${{ hosts.append('x') }}", {"hosts": ["a"]}, WHERE)
    assert sandbox.render("${{ hosts | join(',') }}", SCOPE) == "a,b"


def test_the_normal_environment_is_not_sandboxed(templar: Templar) -> None:
    items: list[str] = []

    templar.render("${{ items.append('x') }}", {"items": items})

    assert items == ["x"]


def test_plugin_filters_and_globals(engine_pm: Any) -> None:
    templar = get_templar(plugin_manager=engine_pm)

    assert templar.render("${{ 'hi' | shout }} ${{ answer }}", {}) == "HI! 42"
    assert get_templar(plugin_manager=engine_pm) is templar
    assert get_templar(plugin_manager=engine_pm, sandboxed=True) is not templar


def test_render_text_uses_plain_jinja_delimiters(templar: Templar) -> None:
    text = "listen {{ port }};\n{% for h in hosts %}\nserver {{ h }};\n{% endfor %}\n"

    assert templar.render_text(text, SCOPE, "assets/site.conf.j2") == (
        "listen 8080;\nserver a;\nserver b;\n"
    )


def test_render_text_errors_name_the_file_and_line(templar: Templar) -> None:
    with pytest.raises(TemplateError) as info:
        templar.render_text("a\nb {{ nope }}\n", SCOPE, "assets/x.j2")

    assert str(info.value) == (
        "assets/x.j2:2: undefined variable 'nope' in the template; define it (recipe "
        "vars, inputs, inventory or -e) or give a default: nope | default(...)"
    )
    with pytest.raises(TemplateError) as syntax:
        templar.render_text("a\n{% if %}\n", SCOPE, "assets/y.j2")
    assert str(syntax.value).startswith("assets/y.j2:2: bad template syntax:")


def test_has_template() -> None:
    assert is_template("a ${{ b }}")
    assert is_template("${% if x %}")
    assert not is_template("${HOME} and {{ x }}")
    assert has_template({"a": [1, {"b": "${{ c }}"}]})
    assert not has_template({"a": [1, {"b": "c"}], "n": None})


def test_scope_renders_templated_layers_lazily(templar: Templar) -> None:
    rendered: list[str] = []

    def render(value: Any, scope: Any, location: Any) -> Any:
        rendered.append(value)
        return templar.render(value, scope, location)

    scope = Scope(
        [
            Layer("low", {"a": 1, "unused": "${{ boom }}"}, templated=True),
            Layer("high", {"b": "${{ a + 1 }}"}, templated=True),
            Layer("registered", {"c": "${{ not rendered }}"}),
        ],
        render=render,
    )

    assert scope["b"] == 2
    assert scope["b"] == 2
    assert scope["c"] == "${{ not rendered }}"
    assert rendered == ["${{ a + 1 }}"]  # rendered once, unused never
    assert "unused" in scope
    assert sorted(scope) == ["a", "b", "c", "unused"]
    assert scope.explain("a") == [("low", 1)]
