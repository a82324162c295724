"""The vars precedence layers, the lazy scope templates read, and ``explain``.

Layers, lowest to highest precedence (a higher layer wins):

 1. ``built-in``: ``host``, ``hostname`` and ``facts``;
 2. the inventory's layers for the host, in the order
    ``tenfra.inventory.Inventory.var_layers(host)`` returns them (inventory
    vars, inventory vars sources, group vars in the inventory's documented
    group order, host vars);
 3. ``recipe vars``: the recipe's ``vars``;
 4. ``recipe varsSources``: values loaded by the recipe's ``varsSources``;
 5. ``recipe groupVars (GROUP)``: one layer per group of the host, in the
    inventory's group order;
 6. ``recipe hostVars``: the recipe's ``hostVars`` entry for this host;
 7. ``inputs``: the values the recipe was called with (``recipe`` task or the
    command line), with the input defaults;
 8. ``registered``: values registered by earlier tasks (``out``,
    ``outRaw``, ``set``, ``load``);
 9. ``nested (...)``: the loop item and index, the retry count and last
    error, and what nested tasks registered without ``global``; an inner
    nesting wins over an outer one;
10. ``task vars``: the ``vars`` of the task itself;
11. ``extra vars``: ``-e key=value`` on the command line.

Task vars sit above registered values on purpose: they are written on the
very task they affect, so a value registered earlier never silently
overrides them.  Extra vars win over everything, so an operator can always
force a value.

Values of layers marked ``templated`` may contain ``${{ }}``; they are
rendered when a template first reads them.  A variable that refers to its
own name reads the next lower layer (``packages: ${{ packages + ['vim'] }}``
extends the inventory's list).  Only what people write in the repository
(inventory.yaml and recipes) is templated: values loaded by host sources and
vars sources, facts, and other hosts' vars are data (:class:`DataVars`), so
a ``${{ }}`` that comes from outside is never evaluated.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Optional, Sequence

import attrs

from tenfra.errors import Location, TemplateError
from tenfra.templating import has_template

if TYPE_CHECKING:
    from tenfra.recipe import Recipe

logger = logging.getLogger(__name__)

BUILTIN = "built-in"
RECIPE_VARS = "recipe vars"
RECIPE_VARS_SOURCES = "recipe varsSources"
RECIPE_GROUP_VARS = "recipe groupVars"
RECIPE_HOST_VARS = "recipe hostVars"
INPUTS = "inputs"
REGISTERED = "registered"
NESTED = "nested"
TASK_VARS = "task vars"
EXTRA_VARS = "extra vars"

ORDER = (
    BUILTIN,
    "inventory layers",
    RECIPE_VARS,
    RECIPE_VARS_SOURCES,
    RECIPE_GROUP_VARS,
    RECIPE_HOST_VARS,
    INPUTS,
    REGISTERED,
    NESTED,
    TASK_VARS,
    EXTRA_VARS,
)
"""The documented precedence order, lowest first (``inventory layers`` is a
placeholder for the inventory's own layers)."""

Renderer = Callable[[Any, Mapping[str, Any], Optional[Location]], Any]


class DataVars(dict):  # type: ignore[type-arg]
    """Vars that are data from outside the repository, never rendered.

    Host sources, vars sources and other hosts' vars are wrapped in this
    mapping; :func:`inventory_layers` makes their layers untemplated, so a
    value such as ``"${{ secret }}"`` from a CMDB stays that very text.
    """


@attrs.frozen
class Layer:
    """One named layer of variables.

    :ivar name: Shown by ``explain`` (``recipe vars``, ``group vars (web)``...).
    :ivar values: The variables of this layer.
    :ivar templated: True when values may contain ``${{ }}`` to render on use.
    :ivar source: The file the values come from (for error positions).
    :ivar positions: The ruamel mapping the values were read from, if any.
    """

    name: str
    values: Mapping[str, Any]
    templated: bool = False
    source: Optional[str] = None
    positions: Any = None

    def location(self, key: str) -> Optional[Location]:
        if self.source is None:
            return None
        if self.positions is not None:
            from tenfra.yamlio import locate

            return locate(self.positions, [key], self.source)
        return Location(self.source)


class Scope(Mapping[str, Any]):
    """Every variable visible to one task: layers merged by precedence.

    Reading a key finds the highest layer that has it.  Templated values are
    rendered on first read and cached in this scope.  ``fallback`` (Jinja's
    globals) is readable but not listed.
    """

    __slots__ = ("_active", "_cache", "_fallback", "_render", "layers")

    def __init__(
        self,
        layers: Sequence[Layer],
        *,
        render: Optional[Renderer] = None,
        fallback: Optional[Mapping[str, Any]] = None,
    ) -> None:
        self.layers = list(layers)
        self._render = render
        self._fallback = fallback
        self._cache: dict[str, Any] = {}
        self._active: set[tuple[str, int]] = set()

    def __contains__(self, key: object) -> bool:
        if key in self._cache:
            return True
        for layer in self.layers:
            if key in layer.values:
                return True
        return self._fallback is not None and key in self._fallback

    def __getitem__(self, key: str) -> Any:
        try:
            return self._cache[key]
        except KeyError:
            pass
        value = self._resolve(key, len(self.layers))
        self._cache[key] = value
        return value

    def _resolve(self, key: str, below: int) -> Any:
        for index in range(below - 1, -1, -1):
            layer = self.layers[index]
            if key not in layer.values:
                continue
            value = layer.values[key]
            if layer.templated and self._render is not None and has_template(value):
                marker = (key, index)
                if marker in self._active:
                    raise TemplateError(
                        f"variable {key!r} ({layer.name}) refers to itself through "
                        "other variables; break the loop between them",
                        layer.location(key),
                    )
                self._active.add(marker)
                try:
                    value = self._render(
                        value, _Shadow(self, key, index), layer.location(key)
                    )
                finally:
                    self._active.discard(marker)
            return value
        if self._fallback is not None and key in self._fallback:
            return self._fallback[key]
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        seen: set[str] = set()
        for layer in reversed(self.layers):
            for key in layer.values:
                if key not in seen:
                    seen.add(key)
                    yield key

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def flat(self) -> dict[str, Any]:
        """A plain dict of every variable (rendering templated values)."""
        return {key: self[key] for key in self}

    def explain(self, key: str) -> list[tuple[str, Any]]:
        """``(layer name, raw value)`` of every layer defining ``key``, low to high."""
        return [
            (layer.name, layer.values[key])
            for layer in self.layers
            if key in layer.values
        ]


class _Shadow(Mapping[str, Any]):
    """The scope as seen while rendering ``key`` of layer ``index``.

    ``key`` itself resolves from the layers below, so a variable can extend
    the value it overrides; other names resolve normally.
    """

    __slots__ = ("_below", "_key", "_scope")

    def __init__(self, scope: Scope, key: str, below: int) -> None:
        self._scope = scope
        self._key = key
        self._below = below

    def __contains__(self, key: object) -> bool:
        if key == self._key:
            return any(
                key in layer.values for layer in self._scope.layers[: self._below]
            )
        return key in self._scope

    def __getitem__(self, key: str) -> Any:
        if key == self._key:
            return self._scope._resolve(key, self._below)
        return self._scope[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._scope)

    def __len__(self) -> int:
        return len(self._scope)


@attrs.frozen
class Explanation:
    """Where a variable's value comes from, for ``tenfra inventory explain``."""

    name: str
    layers: list[tuple[str, Any]]  # (layer name, value), lowest first

    @property
    def winner(self) -> Optional[tuple[str, Any]]:
        return self.layers[-1] if self.layers else None

    def lines(self) -> list[str]:
        """Human-readable lines, the winning layer marked with ``*``."""
        if not self.layers:
            return [f"{self.name} is not defined in any layer"]
        out = []
        for position, (layer, value) in enumerate(self.layers):
            mark = "*" if position == len(self.layers) - 1 else " "
            out.append(f"{mark} {layer}: {value!r}")
        return out


def builtin_layer(host: str, facts: Mapping[str, Any]) -> Layer:
    """``host``, ``hostname`` and ``facts``, the lowest layer."""
    return Layer(BUILTIN, {"host": host, "hostname": host, "facts": facts})


def recipe_layers(
    recipe: Recipe,
    host: str,
    groups: Sequence[str] = (),
    sources_values: Optional[Mapping[str, Any]] = None,
) -> list[Layer]:
    """The recipe's own layers for ``host`` (vars, varsSources, groupVars, hostVars)."""
    source = recipe.source
    layers = [
        Layer(
            RECIPE_VARS,
            recipe.vars,
            templated=True,
            source=source,
            positions=recipe.node("vars"),
        )
    ]
    if sources_values:
        layers.append(Layer(RECIPE_VARS_SOURCES, sources_values, templated=False))
    for group in groups:
        values = recipe.group_vars.get(group)
        if values is not None:
            layers.append(
                Layer(
                    f"{RECIPE_GROUP_VARS} ({group})",
                    values,
                    templated=True,
                    source=source,
                    positions=recipe.node("groupVars", group),
                )
            )
    host_values = recipe.host_vars_for(host)
    if host_values is not None:
        key, values = host_values
        layers.append(
            Layer(
                RECIPE_HOST_VARS,
                values,
                templated=True,
                source=source,
                positions=recipe.node("hostVars", key),
            )
        )
    return layers


def inventory_layers(raw: Sequence[tuple[str, Mapping[str, Any]]]) -> list[Layer]:
    """Layers from ``Inventory.var_layers(host)`` (name, mapping) pairs.

    A :class:`DataVars` mapping gives an untemplated layer.
    """
    return [
        Layer(
            name,
            values,
            templated=not isinstance(values, DataVars),
            positions=None,
        )
        for name, values in raw
    ]


def explain_layers(layers: Sequence[Layer], var: str) -> Explanation:
    """Which layers define ``var``, lowest first; the last one wins."""
    return Explanation(
        var,
        [(layer.name, layer.values[var]) for layer in layers if var in layer.values],
    )


def explain(
    host: str,
    var: str,
    *,
    inventory: Any = None,
    recipe: Optional[Recipe] = None,
    groups: Optional[Sequence[str]] = None,
    extra_vars: Optional[Mapping[str, Any]] = None,
) -> Explanation:
    """Which layer each value of ``var`` came from for ``host``.

    ``inventory`` is a :class:`tenfra.inventory.Inventory` (its ``var_layers``
    are used); ``recipe`` adds the recipe's layers; ``extra_vars`` the
    command line's.  Values are shown raw (templates unrendered).
    """
    layers: list[Layer] = [Layer(BUILTIN, {"host": host, "hostname": host})]
    if inventory is not None:
        layers.extend(inventory_layers(inventory.var_layers(host)))
        if groups is None:
            groups = host_groups(inventory, host)
    if recipe is not None:
        layers.extend(recipe_layers(recipe, host, groups or ()))
    if extra_vars:
        layers.append(Layer(EXTRA_VARS, extra_vars))
    return explain_layers(layers, var)


def host_groups(inventory: Any, host: str) -> list[str]:
    """The host's groups in the inventory's order, if the inventory says."""
    for name in ("groups_of", "host_groups", "groups_for"):
        method = getattr(inventory, name, None)
        if callable(method):
            return [str(group) for group in method(host)]
    return []
