"""Property-based tests of the host pattern engine (hypothesis)."""

from __future__ import annotations

import re

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tenfra.patterns import (
    SimpleUniverse,
    check_name,
    compile_pattern,
    expand_ranges,
)

NAME_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789-."
names = st.text(alphabet=NAME_CHARS, min_size=1, max_size=12).filter(
    lambda name: check_name(name) is None
)
prefixes = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=6)
host_lists = st.lists(names, min_size=1, max_size=25, unique=True)


@st.composite
def universes(draw: st.DrawFn) -> SimpleUniverse:
    hosts = draw(host_lists)
    groups = draw(
        st.dictionaries(
            st.sampled_from(["g1", "g2", "g3"]),
            st.lists(st.sampled_from(hosts), unique=True),
            max_size=3,
        )
    )
    return SimpleUniverse(hosts, groups)


@st.composite
def atoms(draw: st.DrawFn, universe: SimpleUniverse) -> str:
    kind = draw(st.sampled_from(["name", "group", "glob", "regex", "range"]))
    if kind == "name":
        return draw(st.sampled_from(list(universe.hosts)))
    if kind == "group":
        return draw(st.sampled_from(["g1", "g2", "g3", "all", "ungrouped"]))
    if kind == "glob":
        return draw(st.text(alphabet="abc-*?", min_size=1, max_size=4))
    if kind == "regex":
        return "~" + re.escape(draw(st.text(alphabet="abc1", min_size=1, max_size=3)))
    low = draw(st.integers(0, 20))
    high = draw(st.integers(low, 30))
    return f"*[{low}:{high}]"


def _members(universe: SimpleUniverse, host: str) -> set[str]:
    groups = {g for g in ("g1", "g2", "g3") if host in (universe.members(g) or ())}
    groups.add("grouped" if groups else "ungrouped")
    return groups


@settings(max_examples=300)
@given(
    prefix=prefixes,
    low=st.integers(0, 150),
    span=st.integers(0, 150),
    number=st.integers(0, 400),
    width=st.integers(1, 4),
)
def test_range_matches_exactly_the_numbers_in_it(
    prefix: str, low: int, span: int, number: int, width: int
) -> None:
    high = low + span
    low_text = format(low, f"0{width}d")
    high_text = format(high, f"0{width}d")
    padded = width > 1 and (low_text.startswith("0") or high_text.startswith("0"))
    pattern = compile_pattern(f"{prefix}[{low_text}:{high_text}]")
    effective = width if padded else 1
    written = format(number, f"0{effective}d")

    assert pattern.matches(prefix + written) == (low <= number <= high)
    # anchored: extra characters on either side never match
    assert not pattern.matches("x" + prefix + written)
    assert not pattern.matches(prefix + written + "x")
    # padding is exact: a different padding of the same number never matches
    if effective > 1 or number < 10:
        assert not pattern.matches(prefix + "0" + written)


@given(prefix=prefixes, low=st.integers(0, 99), number=st.integers(0, 999))
def test_open_range_has_no_upper_bound(prefix: str, low: int, number: int) -> None:
    pattern = compile_pattern(f"{prefix}[{low}:]")
    assert pattern.matches(f"{prefix}{number}") == (number >= low)


@given(prefix=prefixes, low=st.integers(0, 20), high=st.integers(0, 20))
def test_expanded_names_are_matched_by_their_range(
    prefix: str, low: int, high: int
) -> None:
    assume(low <= high)
    definition = f"{prefix}[{low:02d}:{high:02d}]"
    expanded = expand_ranges(definition)
    assert len(expanded) == high - low + 1
    assert compile_pattern(definition).select(SimpleUniverse(expanded, {})) == expanded


@given(hosts=host_lists)
def test_exact_names_select_themselves(hosts: list[str]) -> None:
    universe = SimpleUniverse(hosts, {})
    for host in hosts:
        assert compile_pattern(host).select(universe) == [host]
    assert compile_pattern(hosts).select(universe) == hosts  # a list targets all
    assert compile_pattern(",".join(hosts)).select(universe) == hosts


@given(hosts=host_lists)
def test_star_and_all_select_everything(hosts: list[str]) -> None:
    universe = SimpleUniverse(hosts, {})
    assert compile_pattern("*").select(universe) == hosts
    assert compile_pattern("all").select(universe) == hosts


@given(data=st.data(), universe=universes())
def test_set_algebra(data: st.DataObject, universe: SimpleUniverse) -> None:
    a = data.draw(atoms(universe))
    b = data.draw(atoms(universe))
    everything = set(universe.hosts)
    set_a = compile_pattern(a).select_set(universe)
    set_b = compile_pattern(b).select_set(universe)

    assert compile_pattern(f"{a},{b}").select_set(universe) == set_a | set_b
    assert compile_pattern([a, b]).select_set(universe) == set_a | set_b
    assert compile_pattern(f"{b},{a}").select_set(universe) == set_a | set_b
    assert compile_pattern(f"{a},&{b}").select_set(universe) == set_a & set_b
    assert compile_pattern(f"{a},!{b}").select_set(universe) == set_a - set_b
    assert compile_pattern(f"!{a}").select_set(universe) == everything - set_a
    assert compile_pattern(f"{a},!{a}").select_set(universe) == set()


@given(data=st.data(), universe=universes())
def test_per_host_matching_agrees_with_selection(
    data: st.DataObject, universe: SimpleUniverse
) -> None:
    terms = data.draw(st.lists(atoms(universe), min_size=1, max_size=4))
    ops = data.draw(
        st.lists(
            st.sampled_from(["", "&", "!"]), min_size=len(terms), max_size=len(terms)
        )
    )
    pattern = compile_pattern(",".join(op + term for op, term in zip(ops, terms)))
    selected = pattern.select(universe)

    assert selected == [h for h in universe.hosts if h in set(selected)]  # order kept
    for host in universe.hosts:
        assert pattern.matches(host, _members(universe, host)) == (host in selected)


@given(text=st.text(max_size=20))
def test_any_text_compiles_or_fails_cleanly(text: str) -> None:
    from tenfra.errors import InventoryError

    try:
        pattern = compile_pattern(text)
    except InventoryError as exc:
        assert str(exc).endswith(".")
        return
    pattern.select(SimpleUniverse(["a", "b-1"], {"g": ["a"]}))
