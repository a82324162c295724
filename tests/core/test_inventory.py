"""The inventory model: hosts, groups, special groups, layers and their errors."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tenfra.errors import InventoryError, ValidationError
from tenfra.inventory import Inventory, load_inventory, load_inventory_text
from tenfra.pluginmanager import PluginInfo, PluginManager

ROOT = Path(__file__).resolve().parents[2]


def _source_manager() -> PluginManager:
    """Only the source plugins, so these tests do not depend on other plugins."""
    import importlib

    manager = PluginManager(load_entry_points=False)
    for name in ("hostsources", "varssources"):
        module = importlib.import_module(f"tenfra.plugins.{name}")
        info = PluginInfo(
            name=name,
            version="test",
            origin="builtin",
            distribution="tenfra",
            entry_point=None,
            module=module.__name__,
        )
        manager.register(module, info)
    return manager


MANAGER = _source_manager()
EXAMPLE = ROOT / "examples" / "inventory.yaml"


def _inv(text: str, tmp_path: Path, **files: str) -> Inventory:
    for name, body in files.items():
        target = tmp_path / name.replace("__", "/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(body))
    path = tmp_path / "inventory.yaml"
    path.write_text(textwrap.dedent(text))
    return load_inventory(path, plugin_manager=MANAGER)


def _error(text: str, tmp_path: Path, **files: str) -> str:
    with pytest.raises((InventoryError, ValidationError)) as info:
        inv = _inv(text, tmp_path, **files)
        for host in inv.hosts:
            inv.var_layers(host)
    return str(info.value)


# -- the example ---------------------------------------------------------------------


def test_example_hosts_and_groups() -> None:
    inv = load_inventory(EXAMPLE, plugin_manager=MANAGER)

    assert inv.hosts[:3] == ["web-01", "web-02", "web-03"]
    assert len(inv) == 8
    assert inv.match("web") == ["web-01", "web-02", "web-03"]
    assert inv.match("db") == ["db-01", "db-02"]
    assert inv.match("backend") == ["db-01", "db-02", "cache-01"]
    assert "staging-web-01" not in inv.match("prod")
    assert inv.match("prod,!web-*") == ["db-01", "db-02", "cache-01", "bastion-01"]
    assert inv.match("ungrouped") == []
    assert inv.match("grouped") == inv.hosts


def test_example_group_order_is_depth_then_name() -> None:
    inv = load_inventory(EXAMPLE, plugin_manager=MANAGER)

    order = [(g.name, g.depth) for g in inv.ordered_groups()]
    assert order == [
        ("prod", 0),
        ("staging", 0),
        ("backend", 1),
        ("web", 1),
        ("cache", 2),
        ("db", 2),
    ]
    assert inv.groups_of("db-01") == ["prod", "backend", "db"]
    assert inv.groups_of("db-01", special=True)[:2] == ["all", "grouped"]


def test_example_layers_of_a_host() -> None:
    inv = load_inventory(EXAMPLE, plugin_manager=MANAGER)

    labels = [label for label, _values in inv.var_layers("db-01")]
    assert labels == [
        f"inventory vars ({EXAMPLE}:5:3)",
        "inventory varsSources[0] file vars/common.yaml",
        "inventory varsSources[1] file vars/users.yaml",
        f"group prod vars ({EXAMPLE}:47:5)",
        "group prod varsSources[0] file vars/prod.yaml",
        f"group backend vars ({EXAMPLE}:43:5)",
        f"host vars ({EXAMPLE}:19:3)",
    ]
    merged = inv.host_vars("db-01")
    assert merged["monitoring_tier"] == "critical"  # backend (deeper) beats prod
    assert merged["postgres_role"] == "primary"
    assert merged["timezone"] == "Europe/Berlin"


# -- hosts ---------------------------------------------------------------------------


def test_hosts_list_form_with_ranges_and_entries(tmp_path: Path) -> None:
    inv = _inv(
        """
        hosts:
          - web-[01:03]
          - name: db-01
            vars: {role: primary}
            groups: [db]
        """,
        tmp_path,
    )
    assert inv.hosts == ["web-01", "web-02", "web-03", "db-01"]
    assert inv.match("db") == ["db-01"]
    assert inv.host_vars("db-01") == {"role": "primary"}


def test_hosts_map_form(tmp_path: Path) -> None:
    inv = _inv(
        """
        hosts:
          a:
          b: {}
          c:
            vars: {x: 1}
            groups: [g]
        """,
        tmp_path,
    )
    assert inv.hosts == ["a", "b", "c"]
    assert inv.groups_of("c") == ["g"]
    assert inv.match("ungrouped") == ["a", "b"]
    assert inv.match("grouped") == ["c"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("hosts: [a, a]\n", "host 'a' is defined twice"),
        ("hosts: ['web-[1:2]', web-2]\n", "host 'web-2' is defined twice"),
        ("hosts:\n  'web 1':\n", "inventory.yaml:2:3: host name 'web 1' contains ' '"),
        ("hosts:\n  all:\n", "'all' is a special group name"),
        (
            "hosts:\n  a:\n    vars: [1]\n",
            "inventory.yaml:3:11: host 'a': vars: expected a mapping",
        ),
        ("hosts:\n  a:\n    var: {}\n", "unknown key 'var'"),
        ("hosts:\n  - 3\n", "inventory.yaml:2:5: hosts[0]: expected a host name"),
        ("hosts: web-01\n", "inventory.yaml:1:8: hosts: expected a list of host names"),
        ("hosts:\n  'web-[5:]':\n", "closed ranges"),
        ("hosts:\n  a:\n    groups: [all]\n", "'all' is a special group name"),
        ("host: [a]\n", "inventory.yaml:1:1: unknown key 'host' in the inventory"),
        ("vars: [a]\n", "inventory.yaml:1:7: vars: expected a mapping"),
    ],
)
def test_host_errors_are_located(text: str, expected: str, tmp_path: Path) -> None:
    assert expected in _error(text, tmp_path)


def test_unknown_top_level_key_suggests(tmp_path: Path) -> None:
    message = _error("hostsources: []\n", tmp_path)
    assert "did you mean 'hostSources'" in message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match="inventory file not found"):
        load_inventory(tmp_path / "nope.yaml")


def test_folder_means_its_inventory_yaml(tmp_path: Path) -> None:
    (tmp_path / "inventory.yaml").write_text("hosts: [a]\n")
    assert load_inventory(tmp_path).hosts == ["a"]


def test_empty_file_is_an_empty_inventory(tmp_path: Path) -> None:
    inv = _inv("", tmp_path)
    assert inv.hosts == []
    assert inv.match("all") == []


def test_unknown_host_suggests(tmp_path: Path) -> None:
    inv = _inv("hosts: [web-01, db-01]\n", tmp_path)
    with pytest.raises(InventoryError, match="did you mean 'web-01'"):
        inv.var_layers("web-1")


# -- groups --------------------------------------------------------------------------


def test_group_forms(tmp_path: Path) -> None:
    inv = _inv(
        """
        hosts: [web-01, web-02, db-01, db-02, lb-01]
        groups:
          web: "web-*"
          db: [db-01, db-02]
          front:
            hosts: [lb-01]
            groups: [web]
          everything:
            hosts: "front,db"
          empty:
        """,
        tmp_path,
    )
    assert inv.match("front") == ["web-01", "web-02", "lb-01"]
    assert inv.match("everything") == inv.hosts
    assert inv.match("empty") == []
    depths = {g.name: g.depth for g in inv.ordered_groups()}
    assert depths == {"everything": 0, "empty": 0, "front": 1, "db": 1, "web": 2}
    assert inv.groups_of("web-01") == ["everything", "front", "web"]


def test_group_exclusion_and_intersection(tmp_path: Path) -> None:
    inv = _inv(
        """
        hosts: [a1, a2, b1]
        groups:
          a: "a*"
          ones: "*1"
          not_a: "!a"
          a_ones: "a,&ones"
        """,
        tmp_path,
    )
    assert inv.match("not_a") == ["b1"]
    assert inv.match("a_ones") == ["a1"]
    # groups named only in & or ! do not make the group deeper
    depths = {g.name: g.depth for g in inv.ordered_groups()}
    assert depths == {"a": 1, "ones": 0, "not_a": 0, "a_ones": 0}


@pytest.mark.parametrize(
    ("groups", "expected"),
    [
        ("a: [b]\n  b: [a]", "cycle: a -> b -> a"),
        ("a: [b]\n  b: [c]\n  c: 'a,h1'", "cycle: a -> b -> c -> a"),
        ("a: '!a'", "cycle: a -> a"),
        ("a:\n    groups: [b]\n  b:\n    groups: [a]", "cycle: a -> b -> a"),
    ],
)
def test_group_cycles(groups: str, expected: str, tmp_path: Path) -> None:
    message = _error(f"hosts: [h1]\ngroups:\n  {groups}\n", tmp_path)
    assert expected in message
    assert "Remove one of these references" in message
    assert "inventory.yaml:" in message


@pytest.mark.parametrize(
    ("groups", "expected"),
    [
        (
            "web: [web-01, web-03]",
            "inventory.yaml:3:8: group 'web' names 'web-03', which is neither a host "
            "nor a group (did you mean 'web-01'?)",
        ),
        ("web: 'web-*,!dbs'", "names 'dbs'"),
        ("web:\n    groups: [nope]", "names 'nope'"),
        ("all: [web-01]", "'all' is a special group"),
        ("ungrouped: [web-01]", "special group"),
        ("web: grouped", "refers to the special group 'grouped'"),
        ("web-01: [web-01]", "'web-01' is both a host and a group name"),
        ("web: 'web-[3:1]'", "inventory.yaml:3:8: host pattern 'web-[3:1]'"),
        ("web: [3]", "inventory.yaml:3:9: groups.web[0]: expected a host pattern"),
        ("web: 3", "groups.web: expected a host pattern"),
        ("web:\n    host: x", "unknown key 'host' in group 'web'"),
        ("'a b': [web-01]", "group name 'a b' contains ' '"),
    ],
)
def test_group_errors(groups: str, expected: str, tmp_path: Path) -> None:
    message = _error(f"hosts: [web-01]\ngroups:\n  {groups}\n", tmp_path)
    assert expected in message


def test_groups_named_by_host_records_are_created(tmp_path: Path) -> None:
    inv = _inv(
        """
        hosts:
          a: {groups: [new]}
        groups:
          outer: [new]
        """,
        tmp_path,
    )
    assert inv.match("outer") == ["a"]
    assert inv.groups_of("a") == ["outer", "new"]


def test_special_groups(tmp_path: Path) -> None:
    inv = _inv(
        """
        hosts: [a, b, c]
        groups:
          g: [a]
          h: "g"
        """,
        tmp_path,
    )
    assert inv.members("all") == {"a", "b", "c"}
    assert inv.match("grouped") == ["a"]
    assert inv.match("ungrouped") == ["b", "c"]
    assert inv.members("nope") is None


def test_from_hosts() -> None:
    inv = Inventory.from_hosts(["a", "b"], {"g": ["b"]})
    assert inv.match("g") == ["b"]
    assert inv.var_layers("a") == []


# -- precedence: every adjacent pair of inventory layers ----------------------------


PRECEDENCE = """
vars: {v: inventory-vars}
varsSources:
  - file: inv.yaml
hosts:
  h:
    vars: {v: host-vars}
hostSources:
  - raw:
      hosts:
        h: {vars: {v: host-source}}
groups:
  parent:
    groups: [child]
    vars: {v: parent-vars}
    varsSources:
      - file: parent.yaml
  child:
    hosts: [h]
    vars: {v: child-vars}
  zeta:
    hosts: [h]
    vars: {v: zeta-vars}
"""


def _winner(tmp_path: Path, text: str, **files: str) -> str:
    files.setdefault("inv.yaml", "v: inventory-source\n")
    files.setdefault("parent.yaml", "v: parent-source\n")
    inv = _inv(text, tmp_path, **files)
    value = inv.host_vars("h")["v"]
    assert isinstance(value, str)
    return value


LOWER = [
    "host-source",
    "host-vars",
    "child-vars",
    "zeta-vars",
    "parent-source",
    "parent-vars",
    "inventory-source",
]


@pytest.mark.parametrize(
    ("remove", "winner"),
    [
        # each row removes the top layer left, so the next one must win
        ([], "host-source"),  # host source records beat the hosts section
        (["host-source"], "host-vars"),  # host vars beat every group
        (["host-source", "host-vars"], "child-vars"),  # deeper group beats shallower
        (LOWER[:3], "zeta-vars"),  # same depth: by name, parent < zeta
        (LOWER[:4], "parent-source"),  # a group's sources beat its vars
        (LOWER[:5], "parent-vars"),
        (LOWER[:6], "inventory-source"),  # any group beats inventory vars sources
        (LOWER[:7], "inventory-vars"),  # inventory sources beat inventory vars
    ],
)
def test_precedence_pairs(remove: list[str], winner: str, tmp_path: Path) -> None:
    text = PRECEDENCE
    files = {}
    for name in remove:
        if name in ("inventory-source", "parent-source"):
            files["inv.yaml" if name == "inventory-source" else "parent.yaml"] = "{}\n"
        else:
            text = text.replace(f"{{v: {name}}}", "{}")
    assert _winner(tmp_path, text, **files) == winner


def test_zeta_sorts_after_child_only_by_depth(tmp_path: Path) -> None:
    inv = _inv(PRECEDENCE, tmp_path, **{"inv.yaml": "{}\n", "parent.yaml": "{}\n"})
    assert inv.groups_of("h") == ["parent", "zeta", "child"]


# -- vars sources --------------------------------------------------------------------


def test_vars_sources_load_lazily_and_once(tmp_path: Path) -> None:
    inv = _inv(
        """
        hosts: [a, b]
        varsSources:
          - file: shared.yaml
        """,
        tmp_path,
        **{"shared.yaml": "x: 1\n"},
    )
    (tmp_path / "shared.yaml").write_text("x: 2\n")  # not read yet: lazily loaded
    assert inv.host_vars("a") == {"x": 2}
    (tmp_path / "shared.yaml").write_text("x: 3\n")
    assert inv.host_vars("b") == {"x": 2}  # cached for the whole inventory


def test_missing_vars_file_is_reported_with_its_entry(tmp_path: Path) -> None:
    message = _error(
        """
        hosts: [a]
        varsSources:
          - file: nope.yaml
        """,
        tmp_path,
    )
    assert "inventory.yaml:4:5: vars source 'file': file nope.yaml not found" in message


def test_unknown_source_names_the_installed_ones(tmp_path: Path) -> None:
    message = _error("varsSources:\n  - fiel: x.yaml\n", tmp_path)
    assert "inventory.yaml:2:5: varsSources[0]: unknown vars source 'fiel'" in message
    assert "did you mean 'file'" in message
    assert "env, file, glob, http" in message


def test_source_entry_with_two_keys(tmp_path: Path) -> None:
    message = _error("varsSources:\n  - {file: a, env: B}\n", tmp_path)
    assert "exactly one key" in message


def test_source_options_are_strict(tmp_path: Path) -> None:
    message = _error(
        "varsSources:\n  - file: {path: a.yaml, optionl: true}\n", tmp_path
    )
    assert "inventory.yaml:2:26: unknown key 'optionl'" in message


def test_load_inventory_text(tmp_path: Path) -> None:
    inv = load_inventory_text(
        "hosts: [a]\ngroups: {g: a}\n", base_dir=tmp_path, plugin_manager=MANAGER
    )
    assert inv.match("g") == ["a"]


def test_unknown_names_in_a_pattern(tmp_path: Path) -> None:
    inv = _inv("hosts: [web-01]\ngroups: {web: web-01}\n", tmp_path)
    assert inv.unknown_names("web,web-01,web-02,all,!db,~x,web-*") == ["web-02", "db"]
    assert inv.match("web-01,web-02") == ["web-01"]
