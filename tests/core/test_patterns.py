"""Host patterns: one table row per form and edge case, plus errors."""

from __future__ import annotations

from typing import Union

import pytest

from tenfra.errors import InventoryError, Location, ValidationError
from tenfra.patterns import (
    SimpleUniverse,
    check_name,
    compile_pattern,
    expand_ranges,
    select,
    split_terms,
)

HOSTS = [
    "web-1",
    "web-2",
    "web-3",
    "web-01",
    "web-02",
    "web-09",
    "web-10",
    "web-11",
    "web-100",
    "xweb-03",
    "web-03x",
    "db-1",
    "db-2",
    "db-10",
    "dbx",
    "cache-a",
    "cache-b",
    "cache-z",
    "lb.example.com",
    "lbxexample.com",
]
GROUPS = {
    "web": ["web-01", "web-02", "web-09", "web-10"],
    "db": ["db-1", "db-2", "db-10"],
    "prod": ["web-01", "db-1"],
}

TABLE: list[tuple[Union[str, list[str]], list[str]]] = [
    # exact names
    ("web-01", ["web-01"]),
    ("lb.example.com", ["lb.example.com"]),  # a dot is literal, not "any char"
    ("nosuch", []),
    # lists of exact names target every one of them
    (["web-01", "db-2", "cache-a"], ["web-01", "db-2", "cache-a"]),
    ("web-01,db-2,cache-a", ["web-01", "db-2", "cache-a"]),
    ("web-01, db-2 ,  cache-a", ["web-01", "db-2", "cache-a"]),
    # globs
    ("db-?", ["db-1", "db-2"]),
    ("cache-*", ["cache-a", "cache-b", "cache-z"]),
    ("*", HOSTS),
    ("*-03*", ["xweb-03", "web-03x"]),
    ("cache-[ab]", ["cache-a", "cache-b"]),
    ("cache-[!ab]", ["cache-z"]),
    ("cache-[a-c]", ["cache-a", "cache-b"]),
    # numeric ranges, anchored to the whole name
    ("web-[1:3]", ["web-1", "web-2", "web-3"]),
    ("web-[2:2]", ["web-2"]),
    ("web-[01:10]", ["web-01", "web-02", "web-09", "web-10"]),  # not web-1, xweb-03
    ("web-[01:03]", ["web-01", "web-02"]),  # not xweb-03 nor web-03x
    ("web-[5:]", ["web-10", "web-11", "web-100"]),  # open end, unpadded
    ("web-[:2]", ["web-1", "web-2"]),  # open start
    ("web-[10:]", ["web-10", "web-11", "web-100"]),
    ("web-[02:]", ["web-02", "web-09", "web-10", "web-11", "web-100"]),
    ("web-[01:100]", ["web-01", "web-02", "web-09", "web-10", "web-11", "web-100"]),
    ("db-[1:10]", ["db-1", "db-2", "db-10"]),
    ("*-[1:2]", ["web-1", "web-2", "db-1", "db-2"]),  # the glob never splits digits
    ("cache-[a:b]", ["cache-a", "cache-b"]),  # letter range
    # regex, with ~
    (r"~^db-\d+$", ["db-1", "db-2", "db-10"]),
    (r"~^db", ["db-1", "db-2", "db-10", "dbx"]),
    ("~example", ["lb.example.com", "lbxexample.com"]),
    (
        r"~^web-\d{1,2}$",
        ["web-1", "web-2", "web-3", "web-01", "web-02", "web-09", "web-10", "web-11"],
    ),  # the comma inside {} does not split
    # groups
    ("web", ["web-01", "web-02", "web-09", "web-10"]),
    ("web,db", ["web-01", "web-02", "web-09", "web-10", "db-1", "db-2", "db-10"]),
    ("all", HOSTS),
    ("ungrouped,&cache-*", ["cache-a", "cache-b", "cache-z"]),
    ("grouped,&db-1*", ["db-1", "db-10"]),
    # intersection
    ("web,&prod", ["web-01"]),
    ("web-*,&web-[01:09]", ["web-01", "web-02", "web-09"]),
    ("&prod", ["web-01", "db-1"]),  # intersection with everything
    # exclusion
    ("web,!web-10", ["web-01", "web-02", "web-09"]),
    ("db-*,!db-1*", ["db-2"]),
    ("!web-*,!db*,!cache-*", ["xweb-03", "lb.example.com", "lbxexample.com"]),
    ("web,db,&prod,!db-1", ["web-01"]),
    (["web", "db", "&prod", "!db-1"], ["web-01"]),  # list items combine the same way
    ("! web-01,&web", ["web-02", "web-09", "web-10"]),  # spaces after the operator
]


def _universe() -> SimpleUniverse:
    return SimpleUniverse(HOSTS, GROUPS)


@pytest.mark.parametrize(("pattern", "expected"), TABLE, ids=[str(p) for p, _ in TABLE])
def test_pattern_table(pattern: Union[str, list[str]], expected: list[str]) -> None:
    universe = _universe()
    compiled = compile_pattern(pattern)

    assert compiled.select(universe) == [h for h in HOSTS if h in expected]
    assert sorted(compiled.select(universe)) == sorted(expected)
    # per-host matching agrees with set selection
    memberships = {host: {g for g, m in GROUPS.items() if host in m} for host in HOSTS}
    for host in HOSTS:
        groups = set(memberships[host])
        groups.add("grouped" if groups else "ungrouped")
        assert compiled.matches(host, groups) == (host in expected), host


def test_zero_padding_is_strict() -> None:
    pattern = compile_pattern("web-[01:10]")
    assert pattern.matches("web-01")
    assert pattern.matches("web-10")
    assert not pattern.matches("web-1")
    assert not pattern.matches("web-001")
    assert not pattern.matches("xweb-03")
    assert not pattern.matches("web-11")


def test_unpadded_range_refuses_leading_zeros() -> None:
    pattern = compile_pattern("web-[1:3]")
    assert pattern.matches("web-3")
    assert not pattern.matches("web-03")


def test_compile_is_cached() -> None:
    assert compile_pattern("web-[01:10],!web-05") is compile_pattern(
        "web-[01:10],!web-05"
    )
    assert compile_pattern(["a", "b"]) is compile_pattern(("a", "b"))


def test_atom_cache_is_reused() -> None:
    cache: dict[str, frozenset[str]] = {}
    universe = _universe()
    compile_pattern("web-*").select(universe, cache)
    assert "glob:web-*" in cache
    cache["glob:web-*"] = frozenset({"web-1"})  # a cached atom is not recomputed
    assert compile_pattern("web-*,&web-[1:9]").select(universe, cache) == ["web-1"]


def test_split_terms_respects_brackets_and_escapes() -> None:
    assert split_terms(r"~a{1,2},b") == [r"~a{1,2}", "b"]
    assert split_terms("a[1:2],(x,y),b") == ["a[1:2]", "(x,y)", "b"]
    assert split_terms(r"~a\,b,c") == [r"~a\,b", "c"]


def test_select_helper() -> None:
    assert select("g,!b", ["a", "b", "c"], {"g": ["a", "b"]}) == ["a"]


def test_exact_names() -> None:
    assert compile_pattern("web-01,db,!x,&y").exact_names() == ["web-01", "db"]


BAD = [
    ("", "empty part"),
    ("a,,b", "empty part"),
    ("a,", "empty part"),
    ("!", "'!' must be followed"),
    ("&!a", "two operators"),
    ("~", "'~' must be followed"),
    ("~(unclosed", "not a valid regular expression"),
    ("web-[1:3", "never closed"),
    ("web-]", "has no matching"),
    ("web-[3:1]", "is empty because 3 is greater than 1"),
    ("web-[x:10]", "is not a range"),
    ("web-[:]", "is not a range"),
    ("web-[1:2:3]", "more than one ':'"),
    ("web-[01:010]", "different widths"),
    ("cache-[z:a]", "letter range [z:a] is empty"),
]


@pytest.mark.parametrize(
    ("pattern", "message"), BAD, ids=[b[0] or "empty" for b in BAD]
)
def test_bad_patterns_say_what_is_wrong(pattern: str, message: str) -> None:
    with pytest.raises(InventoryError) as info:
        compile_pattern(pattern)
    assert message in str(info.value)
    assert repr(pattern) in str(info.value) or pattern == ""


def test_bad_pattern_with_location_is_a_validation_error() -> None:
    where = Location("recipes/web.yaml", 3, 10)
    with pytest.raises(ValidationError) as info:
        compile_pattern("web-[3:1]", location=where)
    assert str(info.value).startswith("recipes/web.yaml:3:10: host pattern 'web-[3:1]'")


def test_pattern_must_be_text() -> None:
    with pytest.raises(InventoryError, match="string or a list of strings"):
        compile_pattern(3)  # type: ignore[arg-type]
    with pytest.raises(InventoryError, match="only strings"):
        compile_pattern(["a", 3])  # type: ignore[list-item]
    with pytest.raises(InventoryError, match="list is empty"):
        compile_pattern([])


def test_expand_ranges() -> None:
    assert expand_ranges("web-[01:03]") == ["web-01", "web-02", "web-03"]
    assert expand_ranges("web-[8:10]") == ["web-8", "web-9", "web-10"]
    assert expand_ranges("rack[a:b]-[1:2]") == [
        "racka-1",
        "racka-2",
        "rackb-1",
        "rackb-2",
    ]
    assert expand_ranges("plain") == ["plain"]
    with pytest.raises(InventoryError, match="closed ranges"):
        expand_ranges("web-[5:]")
    with pytest.raises(InventoryError, match="empty"):
        expand_ranges("web-[5:1]")
    with pytest.raises(InventoryError, match="never closed"):
        expand_ranges("web-[5:")


def test_check_name() -> None:
    assert check_name("web-01.example.com") is None
    assert check_name("fe80::1") is None
    message = check_name("web 01")
    assert message is not None and "' '" in message
    assert check_name("a,b", "group") is not None
    assert check_name("") is not None
    assert check_name("all") is not None
    assert check_name("ungrouped", "group") is not None
