"""Regenerate the reference pages under docs/reference/ from the code.

    python scripts/gen_docs.py           # write the pages
    python scripts/gen_docs.py --check   # exit 1 and name the stale pages

tests/docs/test_reference.py runs the same check, so a stale page fails CI.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent


def _hooks() -> str:
    from tenfra.docgen import render_hooks

    return render_hooks()


def _resource_types() -> str:
    from tenfra.commands.schema import all_types, render_markdown

    return render_markdown(all_types())


# page (relative to docs/) -> function returning its text
PAGES: dict[str, Callable[[], str]] = {
    "reference/hooks.md": _hooks,
    "reference/resource-types.md": _resource_types,
}


def stale_pages(docs: Path = ROOT / "docs") -> list[str]:
    """The generated pages whose committed text differs from the code's."""
    stale = []
    for page, render in PAGES.items():
        path = docs / page
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current != render():
            stale.append(page)
    return stale


def write_pages(docs: Path = ROOT / "docs") -> list[Path]:
    """Write every generated page atomically; return the paths written."""
    from tenfra.fileops import atomic_write

    written = []
    for page, render in PAGES.items():
        path = docs / page
        atomic_write(path, render().encode("utf-8"))
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="only report stale pages (exit 1)"
    )
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_pages()
        for page in stale:
            print(f"docs/{page} is stale; run: python scripts/gen_docs.py")
        return 1 if stale else 0
    for path in write_pages():
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
