"""Host patterns: parse once into a matcher object, then select hosts fast.

Grammar (see docs/inventory.md for the table with examples)::

    pattern := string | list of strings      a list is the union of its items
    string  := term ("," term)*              commas inside [] {} () do not split
    term    := ["&" | "!"] atom              & intersects, ! excludes
    atom    := "~" regex                     re.search on the host name
             | glob                          * ? [abc] [!abc] and ranges [a:b]
             | name                          a host name or a group name

A numeric range ``[a:b]`` matches one whole run of digits between ``a`` and
``b``; a bound written with a leading zero (``[01:10]``) fixes the width, so
``web-[01:10]`` matches ``web-01`` ... ``web-10`` but not ``web-1``.  Either
bound may be left open (``[5:]``, ``[:9]``).  ``[a:f]`` is a letter range.
Globs, ranges and regexes match host names, always anchored to the whole name
(regexes use their own anchors).  The positive terms are united first, then
each ``&`` term intersects and each ``!`` term removes; a pattern made only of
``!`` terms starts from every host.
"""

from __future__ import annotations

import functools
import logging
import re
from typing import (
    Collection,
    Iterable,
    Mapping,
    NoReturn,
    Optional,
    Protocol,
    Sequence,
    Union,
)

import attrs

from tenfra.errors import InventoryError, Location, ValidationError

logger = logging.getLogger(__name__)

PatternInput = Union[str, Sequence[str]]

SPECIAL_GROUPS = ("all", "grouped", "ungrouped")
GLOB_CHARS = frozenset("*?[")
# Characters a host or group name may not contain (they mean something in patterns).
RESERVED_CHARS = frozenset(",&!~*?[]") | frozenset(" \t\r\n")

_OPEN = {"[": "]", "{": "}", "(": ")"}


class Universe(Protocol):
    """What a pattern selects from: ordered host names and group members."""

    @property
    def hosts(self) -> Sequence[str]:
        """Every host name, in inventory order."""

    def members(self, group: str) -> Optional[frozenset[str]]:
        """The hosts of ``group`` (special groups included), or None if unknown."""


@attrs.frozen
class _Range:
    low: Optional[int]
    high: Optional[int]
    width: int  # 1 means "no zero padding"

    def accepts(self, digits: str) -> bool:
        number = int(digits)
        if digits != format(number, f"0{self.width}d"):
            return False
        if self.low is not None and number < self.low:
            return False
        return self.high is None or number <= self.high


@attrs.frozen
class Term:
    """One comma-separated part of a pattern, compiled."""

    text: str  # the atom as written, without its operator
    op: str  # "" (union), "&" (intersection) or "!" (exclusion)
    kind: str  # "name", "glob" or "regex"
    regex: Optional[re.Pattern[str]] = attrs.field(default=None, eq=False)
    ranges: tuple[_Range, ...] = attrs.field(default=(), eq=False)

    @property
    def key(self) -> str:
        """A key identifying what the atom selects (the operator excluded)."""
        return f"{self.kind}:{self.text}"

    def match_name(self, host: str) -> bool:
        """Whether a glob or regex atom matches ``host`` (names: equality)."""
        if self.kind == "name":
            return host == self.text
        assert self.regex is not None
        if self.kind == "regex":
            return self.regex.search(host) is not None
        found = self.regex.fullmatch(host)
        if found is None:
            return False
        return all(
            rng.accepts(digits)
            for rng, digits in zip(self.ranges, found.groups())
            if digits is not None
        )

    def matches(self, host: str, groups: Collection[str]) -> bool:
        """Whether the atom selects ``host``, a member of ``groups``."""
        if self.kind == "name":
            return self.text in ("all", host) or self.text in groups
        return self.match_name(host)

    def select(self, universe: Universe) -> frozenset[str]:
        """Every host of ``universe`` the atom selects."""
        if self.kind == "name":
            members = universe.members(self.text)
            if members is not None:
                return members
            return (
                frozenset((self.text,))
                if self.text in _host_set(universe)
                else (frozenset())
            )
        return frozenset(host for host in universe.hosts if self.match_name(host))


def _host_set(universe: Universe) -> Collection[str]:
    host_set = getattr(universe, "host_set", None)
    if host_set is not None:
        return host_set  # type: ignore[no-any-return]
    return frozenset(universe.hosts)


@attrs.frozen
class Pattern:
    """A compiled host pattern; build it with :func:`compile_pattern`."""

    source: str
    terms: tuple[Term, ...]

    @property
    def union(self) -> tuple[Term, ...]:
        return tuple(t for t in self.terms if t.op == "")

    @property
    def intersections(self) -> tuple[Term, ...]:
        return tuple(t for t in self.terms if t.op == "&")

    @property
    def exclusions(self) -> tuple[Term, ...]:
        return tuple(t for t in self.terms if t.op == "!")

    def exact_names(self) -> list[str]:
        """Plain names of the union terms (hosts or groups), in written order."""
        return [t.text for t in self.union if t.kind == "name"]

    def matches(self, host: str, groups: Collection[str] = ()) -> bool:
        """Whether ``host``, a member of ``groups``, is selected (no universe needed).

        ``all`` always matches; pass the special groups ``grouped`` or
        ``ungrouped`` in ``groups`` when they apply.
        """
        union = self.union
        if union and not any(t.matches(host, groups) for t in union):
            return False
        if not all(t.matches(host, groups) for t in self.intersections):
            return False
        return not any(t.matches(host, groups) for t in self.exclusions)

    def select_set(
        self,
        universe: Universe,
        cache: Optional[dict[str, frozenset[str]]] = None,
    ) -> frozenset[str]:
        """The selected hosts as a set; ``cache`` memoises atoms per universe."""

        def atom(term: Term) -> frozenset[str]:
            if cache is None:
                return term.select(universe)
            found = cache.get(term.key)
            if found is None:
                found = term.select(universe)
                cache[term.key] = found
            return found

        union = self.union
        if union:
            selected: frozenset[str] = frozenset().union(*(atom(t) for t in union))
        else:
            selected = frozenset(universe.hosts)
        for term in self.intersections:
            selected = selected & atom(term)
        for term in self.exclusions:
            selected = selected - atom(term)
        return selected

    def select(
        self,
        universe: Universe,
        cache: Optional[dict[str, frozenset[str]]] = None,
    ) -> list[str]:
        """The selected hosts, in the universe's order."""
        chosen = self.select_set(universe, cache)
        if not chosen:
            return []
        return [host for host in universe.hosts if host in chosen]

    def __str__(self) -> str:
        return self.source


def compile_pattern(
    pattern: PatternInput, *, location: Optional[Location] = None
) -> Pattern:
    """Parse ``pattern`` (a string or a list of strings) into a :class:`Pattern`.

    Results are cached, so calling this for every host is cheap.  A malformed
    pattern raises :class:`ValidationError` at ``location`` when given, else
    :class:`InventoryError`.
    """
    key: Union[str, tuple[str, ...]]
    if isinstance(pattern, str):
        key = pattern
    elif isinstance(pattern, (list, tuple)):
        for item in pattern:
            if not isinstance(item, str):
                _fail(
                    f"a host pattern list may hold only strings, got {item!r}; "
                    "quote the item",
                    location,
                )
        key = tuple(pattern)
    else:
        _fail(
            f"a host pattern is a string or a list of strings, got {pattern!r}",
            location,
        )
    try:
        return _compile_cached(key)
    except _PatternSyntaxError as exc:
        problem = str(exc)
    _fail(problem, location)


def _fail(message: str, location: Optional[Location]) -> NoReturn:
    if location is not None:
        raise ValidationError(message, location)
    raise InventoryError(message[0].upper() + message[1:] + ".")


class _PatternSyntaxError(Exception):
    pass


@functools.lru_cache(maxsize=8192)
def _compile_cached(key: Union[str, tuple[str, ...]]) -> Pattern:
    items = [key] if isinstance(key, str) else list(key)
    if not items:
        raise _PatternSyntaxError(
            "the host pattern list is empty; name at least one host, group or 'all'"
        )
    terms: list[Term] = []
    for item in items:
        for part in split_terms(item):
            terms.append(_compile_term(part, item))
    source = key if isinstance(key, str) else ", ".join(key)
    return Pattern(source=source, terms=tuple(terms))


def split_terms(text: str) -> list[str]:
    """Split a pattern string on commas that are not inside brackets."""
    parts: list[str] = []
    depth: list[str] = []
    current: list[str] = []
    escaped = False
    for char in text:
        if escaped:
            current.append(char)
            escaped = False
            continue
        if char == "\\":
            current.append(char)
            escaped = True
            continue
        if char in _OPEN:
            depth.append(_OPEN[char])
        elif depth and char == depth[-1]:
            depth.pop()
        elif char == "," and not depth:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return parts


def _compile_term(raw: str, whole: str) -> Term:
    text = raw.strip()
    if not text:
        raise _PatternSyntaxError(
            f"host pattern {whole!r} has an empty part; remove the extra comma"
        )
    op = ""
    if text[0] in "&!":
        op, text = text[0], text[1:].strip()
        if not text:
            raise _PatternSyntaxError(
                f"host pattern {whole!r}: {op!r} must be followed by a host, group "
                "or pattern"
            )
        if text[0] in "&!":
            raise _PatternSyntaxError(
                f"host pattern {whole!r}: {raw.strip()!r} has two operators; "
                "use one of '&' (and) or '!' (not) per part"
            )
    if text.startswith("~"):
        expression = text[1:]
        if not expression:
            raise _PatternSyntaxError(
                f"host pattern {whole!r}: '~' must be followed by a regular expression"
            )
        try:
            regex = re.compile(expression)
        except re.error as exc:
            raise _PatternSyntaxError(
                f"host pattern {whole!r}: {expression!r} is not a valid regular "
                f"expression ({exc})"
            ) from None
        return Term(text=text, op=op, kind="regex", regex=regex)
    if GLOB_CHARS & set(text) or "]" in text:
        regex, ranges = _translate_glob(text, whole)
        return Term(text=text, op=op, kind="glob", regex=regex, ranges=ranges)
    return Term(text=text, op=op, kind="name")


def _translate_glob(
    text: str, whole: str
) -> tuple[re.Pattern[str], tuple[_Range, ...]]:
    out: list[str] = []
    ranges: list[_Range] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char == "*":
            out.append(".*")
        elif char == "?":
            out.append(".")
        elif char == "[":
            end = text.find("]", index + 1)
            if end == index + 1:  # "[]...]": a literal ] first in the class
                end = text.find("]", index + 2)
            if end < 0:
                raise _PatternSyntaxError(
                    f"host pattern {whole!r}: '[' at position {index + 1} is never "
                    "closed; close it with ']' or use '~' and a regular expression"
                )
            inside = text[index + 1 : end]
            if ":" in inside:
                out.append(_range_regex(inside, whole, ranges))
            else:
                out.append(_char_class(inside))
            index = end
        elif char == "]":
            raise _PatternSyntaxError(
                f"host pattern {whole!r}: ']' at position {index + 1} has no "
                "matching '['"
            )
        else:
            out.append(re.escape(char))
        index += 1
    return re.compile("".join(out), re.DOTALL), tuple(ranges)


def _char_class(inside: str) -> str:
    negate = inside.startswith("!")
    if negate:
        inside = inside[1:]
    body = inside.replace("\\", "\\\\").replace("^", "\\^")
    return f"[{'^' if negate else ''}{body}]"


_BOUND = re.compile(r"\d*")


def _range_regex(inside: str, whole: str, ranges: list[_Range]) -> str:
    low_text, _, high_text = inside.partition(":")
    low_text, high_text = low_text.strip(), high_text.strip()
    if ":" in high_text:
        raise _PatternSyntaxError(
            f"host pattern {whole!r}: range [{inside}] has more than one ':'; "
            "write it as [first:last]"
        )
    if (
        len(low_text) == 1
        and len(high_text) == 1
        and low_text.isalpha()
        and high_text.isalpha()
    ):
        if low_text > high_text:
            raise _PatternSyntaxError(
                f"host pattern {whole!r}: letter range [{inside}] is empty; "
                f"write [{high_text}:{low_text}]"
            )
        return f"[{re.escape(low_text)}-{re.escape(high_text)}]"
    if not (
        _BOUND.fullmatch(low_text)
        and _BOUND.fullmatch(high_text)
        and (low_text or high_text)
    ):
        raise _PatternSyntaxError(
            f"host pattern {whole!r}: [{inside}] is not a range; use numbers "
            "([1:10], [01:10], [5:]) or single letters ([a:f])"
        )
    widths = {len(t) for t in (low_text, high_text) if len(t) > 1 and t[0] == "0"}
    if len(widths) > 1:
        raise _PatternSyntaxError(
            f"host pattern {whole!r}: range [{inside}] pads its bounds to different "
            "widths; pad both the same way, e.g. [01:10]"
        )
    width = widths.pop() if widths else 1
    low = int(low_text) if low_text else None
    high = int(high_text) if high_text else None
    if low is not None and high is not None and low > high:
        raise _PatternSyntaxError(
            f"host pattern {whole!r}: range [{inside}] is empty because {low} is "
            f"greater than {high}; write [{high_text}:{low_text}]"
        )
    ranges.append(_Range(low=low, high=high, width=width))
    return r"(?<![0-9])([0-9]+)(?![0-9])"


def check_name(name: str, what: str = "host") -> Optional[str]:
    """Why ``name`` cannot be a host or group name, or None when it is fine."""
    if not name:
        return f"a {what} name must not be empty"
    if name in SPECIAL_GROUPS:
        return (
            f"{name!r} is a special group name (all, grouped, ungrouped) and cannot "
            f"name a {what}; rename it"
        )
    bad = sorted(RESERVED_CHARS & set(name))
    if bad:
        shown = ", ".join(repr(c) for c in bad)
        return (
            f"{what} name {name!r} contains {shown}, which host patterns reserve; "
            "rename it"
        )
    return None


def expand_ranges(name: str) -> list[str]:
    """Expand closed numeric and letter ranges in a host name definition.

    ``web-[01:03]`` gives ``web-01``, ``web-02``, ``web-03``; a name without
    ranges gives itself.  Open ranges cannot be expanded and raise
    :class:`InventoryError`.
    """
    start = name.find("[")
    if start < 0:
        return [name]
    end = name.find("]", start)
    if end < 0:
        raise InventoryError(
            f"Host name {name!r} has a '[' that is never closed; close it with ']'."
        )
    inside = name[start + 1 : end]
    low_text, sep, high_text = inside.partition(":")
    head, tail = name[:start], name[end + 1 :]
    values: list[str]
    if not sep:
        raise InventoryError(
            f"Host name {name!r}: [{inside}] is not a range; write [first:last]."
        )
    if len(low_text) == 1 and len(high_text) == 1 and low_text.isalpha():
        values = [chr(c) for c in range(ord(low_text), ord(high_text) + 1)]
    elif low_text.isdigit() and high_text.isdigit():
        width = len(low_text) if low_text.startswith("0") and len(low_text) > 1 else 1
        values = [
            format(n, f"0{width}d") for n in range(int(low_text), int(high_text) + 1)
        ]
    else:
        raise InventoryError(
            f"Host name {name!r}: [{inside}] cannot be expanded; host definitions "
            "need closed ranges such as [01:10] or [a:f]."
        )
    if not values:
        raise InventoryError(
            f"Host name {name!r}: range [{inside}] is empty; put the lower bound first."
        )
    return [head + value + rest for value in values for rest in expand_ranges(tail)]


def select(
    pattern: PatternInput,
    hosts: Iterable[str],
    groups: Optional[Mapping[str, Collection[str]]] = None,
) -> list[str]:
    """Convenience: select from a plain host list and ``{group: members}``."""
    universe = SimpleUniverse(list(hosts), groups or {})
    return compile_pattern(pattern).select(universe)


class SimpleUniverse:
    """A :class:`Universe` over a host list and a group mapping."""

    def __init__(
        self, hosts: Sequence[str], groups: Mapping[str, Collection[str]]
    ) -> None:
        self._hosts = list(hosts)
        self.host_set = frozenset(self._hosts)
        self._groups = {name: frozenset(m) for name, m in groups.items()}
        grouped = frozenset().union(*self._groups.values()) & self.host_set
        self._groups.setdefault("all", self.host_set)
        self._groups.setdefault("grouped", grouped)
        self._groups.setdefault("ungrouped", self.host_set - grouped)

    @property
    def hosts(self) -> Sequence[str]:
        return self._hosts

    def members(self, group: str) -> Optional[frozenset[str]]:
        return self._groups.get(group)
