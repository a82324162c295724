"""Vars precedence: every adjacent pair of layers, and ``explain``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tenfra.inventory import load_inventory_text
from tenfra.report import Status
from tenfra.variables import EXTRA_VARS, explain

# Layers from low to high, as docs/recipes.md lists them (the inventory's own
# layers are tested by the inventory's tests; its top one is host vars).
LAYERS = [
    "inventory",
    "recipe-vars",
    "recipe-vars-sources",
    "recipe-group-vars",
    "recipe-host-vars",
    "inputs",
    "registered",
    "nested",
    "task-vars",
    "extra-vars",
]


def build(kit: Any, layers: set[str]) -> dict[str, Any]:
    """Write a recipe defining ``v`` in ``layers``; return run_recipes arguments."""
    lines: list[str] = []
    if "recipe-vars" in layers:
        lines += ["vars:", "  v: recipe-vars"]
    if "recipe-vars-sources" in layers:
        (kit.recipes / "src.yaml").write_text("v: recipe-vars-sources\n")
        lines += ["varsSources:", "  - file: src.yaml"]
    if "recipe-group-vars" in layers:
        lines += ["groupVars:", "  web:", "    v: recipe-group-vars"]
    if "recipe-host-vars" in layers:
        lines += ["hostVars:", "  web-1:", "    v: recipe-host-vars"]
    if "inputs" in layers:
        lines += ["inputs:", "  v: {type: string}"]
    lines.append("tasks:")
    if "registered" in layers:
        lines.append("  - set: {v: registered}")
    lines += [
        "  - loop:",
        "      items: [nested]",
        f"      as: {'v' if 'nested' in layers else 'it'}",
        "      tasks:",
        "        - record: ${{ v }}",
    ]
    if "task-vars" in layers:
        lines.append("          vars: {v: task-vars}")
    kit.write("main", "\n".join(lines) + "\n")

    inventory = "hosts:\n  web-1:\n    vars: {other: 1}\ngroups:\n  web: [web-1]\n"
    if "inventory" in layers:
        inventory = inventory.replace("{other: 1}", "{v: inventory}")
    inv = load_inventory_text(inventory, base_dir=kit.root, plugin_manager=kit.pm)
    kwargs: dict[str, Any] = {
        "var_layers": inv.var_layers("web-1"),
        "groups": inv.groups_of("web-1"),
    }
    if "inputs" in layers:
        kwargs["inputs"] = {"main": {"v": "inputs"}}
    if "extra-vars" in layers:
        kwargs["extra_vars"] = {"v": "extra-vars"}
    return kwargs


@pytest.mark.parametrize(
    ("lower", "higher"),
    [pytest.param(a, b, id=f"{a}<{b}") for a, b in zip(LAYERS, LAYERS[1:])],
)
def test_the_higher_of_two_adjacent_layers_wins(
    kit: Any, lower: str, higher: str
) -> None:
    kwargs = build(kit, {lower, higher})

    report = kit.run(**kwargs)

    assert report.status is Status.OK, report.recipes[0].error
    assert kit.calls == [higher]


@pytest.mark.parametrize("layer", LAYERS)
def test_each_layer_alone_is_seen(kit: Any, layer: str) -> None:
    kwargs = build(kit, {layer})

    report = kit.run(**kwargs)

    assert report.status is Status.OK, report.recipes[0].error
    assert kit.calls == [layer]


def test_all_layers_together_extra_vars_win(kit: Any) -> None:
    kwargs = build(kit, set(LAYERS))

    kit.run(**kwargs)

    assert kit.calls == ["extra-vars"]


def test_built_in_host_is_the_lowest_layer(kit: Any) -> None:
    kit.write("main", "tasks:\n  - record: ${{ host }}/${{ hostname }}\n")
    inv = load_inventory_text(
        "hosts:\n  web-1:\n    vars: {hostname: web-1.example.org}\n",
        base_dir=kit.root,
        plugin_manager=kit.pm,
    )

    kit.run(var_layers=inv.var_layers("web-1"))

    assert kit.calls == ["web-1/web-1.example.org"]


def test_recipe_group_vars_follow_the_inventory_group_order(kit: Any) -> None:
    kit.write(
        "main",
        """
        groupVars:
          zeta: {v: zeta}
          alpha: {v: alpha}
        tasks:
          - record: ${{ v }}
        """,
    )
    inv = load_inventory_text(
        "hosts: [web-1]\ngroups:\n  alpha: [web-1]\n  zeta: [web-1]\n",
        base_dir=kit.root,
        plugin_manager=kit.pm,
    )
    groups = inv.groups_of("web-1")

    kit.run(var_layers=inv.var_layers("web-1"), groups=groups)

    assert groups == ["alpha", "zeta"]
    assert kit.calls == ["zeta"]  # the later group in the inventory's order wins


def test_nested_inner_scope_wins_over_the_outer_one(kit: Any) -> None:
    kit.write(
        "main",
        """
        tasks:
          - loop:
              items: [outer]
              as: v
              tasks:
                - loop:
                    items: [inner]
                    as: v
                    tasks:
                      - record: ${{ v }}
                - record: ${{ v }}
        """,
    )

    kit.run()

    assert kit.calls == ["inner", "outer"]


def test_a_var_extends_the_value_of_the_layer_below(kit: Any) -> None:
    kit.write(
        "main",
        """
        vars:
          packages: "${{ packages + ['vim'] }}"
          greeting: "hello ${{ name }}"
          name: "${{ host }}"
        tasks:
          - record: ${{ packages }}
          - record: ${{ greeting }}
        """,
    )
    inv = load_inventory_text(
        "hosts:\n  web-1:\n    vars: {packages: [curl]}\n",
        base_dir=kit.root,
        plugin_manager=kit.pm,
    )

    kit.run(var_layers=inv.var_layers("web-1"))

    assert kit.calls == [["curl", "vim"], "hello web-1"]


def test_vars_referring_to_each_other_are_an_error(kit: Any) -> None:
    kit.write(
        "main",
        """
        vars:
          a: "${{ b }}"
          b: "${{ a }}"
        tasks:
          - record: ${{ a }}
        """,
    )

    report = kit.run()

    assert report.status is Status.FAILED
    assert "refers to itself through other variables" in (report.recipes[0].error or "")


def test_explain_lists_every_layer_lowest_first(kit: Any, tmp_path: Path) -> None:
    kit.write(
        "main",
        """
        vars: {v: recipe}
        groupVars:
          web: {v: group}
        hostVars:
          web-1: {v: host}
        tasks: []
        """,
    )
    inv = load_inventory_text(
        "vars: {v: inv}\nhosts:\n  web-1:\n    vars: {v: inv-host}\n"
        "groups:\n  web: [web-1]\n",
        base_dir=tmp_path,
        plugin_manager=kit.pm,
    )
    recipe = kit.recipe_set().get("main")

    explanation = explain(
        "web-1", "v", inventory=inv, recipe=recipe, extra_vars={"v": "cli"}
    )

    names = [name for name, _ in explanation.layers]
    values = [value for _, value in explanation.layers]
    assert values == ["inv", "inv-host", "recipe", "group", "host", "cli"]
    assert names[2:] == [
        "recipe vars",
        "recipe groupVars (web)",
        "recipe hostVars",
        EXTRA_VARS,
    ]
    assert explanation.winner == (EXTRA_VARS, "cli")
    assert explanation.lines()[-1] == "* extra vars: 'cli'"
    assert explain("web-1", "nope", inventory=inv).lines() == [
        "nope is not defined in any layer"
    ]
