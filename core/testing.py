"""pytest plugin for plugin authors: build recipe repositories as tenfra does.

Installed with tenfra as the ``tenfra`` pytest11 entry point, so a plugin
package's tests can use these fixtures without importing anything.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping, Union

import pytest

from tenfra.yamlio import dump_yaml

FileContent = Union[str, bytes, Mapping[str, Any], list[Any]]


def write_tree(root: Path, files: Mapping[str, FileContent]) -> Path:
    """Write ``{relative path: content}`` under ``root``.

    Mappings and lists are written as YAML; strings and bytes as they are.
    """
    for relative, content in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        elif isinstance(content, str):
            path.write_text(content, encoding="utf-8")
        else:
            path.write_text(dump_yaml(content), encoding="utf-8")
    return root


@pytest.fixture
def tenfra_repo(tmp_path: Path) -> Callable[[Mapping[str, FileContent]], Path]:
    """Build a recipe repository: ``tenfra_repo({"recipes/web.yaml": {...}})``.

    Returns the repository folder; call it again to add files.
    """
    root = tmp_path / "repo"
    root.mkdir()

    def build(files: Mapping[str, FileContent]) -> Path:
        return write_tree(root, files)

    return build
