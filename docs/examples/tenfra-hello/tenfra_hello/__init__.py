"""An example third-party tenfra plugin: the ``hello`` resource type.

It is a complete template for a ``tenfra-*`` package: a ``pyproject.toml``
declaring the ``tenfra`` entry point, one options class with described fields,
and a resource type that changes only what differs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs

from tenfra import hookimpl
from tenfra.resource import Context, ResourceType, Result, option


@attrs.frozen(kw_only=True)
class HelloOptions:
    path: str = option("File to write the greeting to.")
    name: str = option("Who to greet.", default="world")


class Hello(ResourceType):
    """Write ``Hello, NAME!`` to a file, only when its content differs.

    Example::

        - hello: path=/tmp/greeting name=tenfra
    """

    name = "hello"
    Options = HelloOptions

    def apply(self, options: HelloOptions, ctx: Context) -> Result:
        path = Path(options.path)
        wanted = f"Hello, {options.name}!\n"
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == wanted:
            return Result.ok({"path": str(path)})
        if not ctx.check:
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_text(wanted, encoding="utf-8")
            tmp.replace(path)
        return Result.changed({"path": str(path)}, check=ctx.check)


@hookimpl
def tenfra_add_resource_types(registry: Any) -> None:
    registry.add_resource_type(Hello)
