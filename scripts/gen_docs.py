"""Regenerate the reference pages under docs/reference/ from the code."""

from __future__ import annotations

from pathlib import Path

from tenfra.docgen import render_hooks

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    target = ROOT / "docs" / "reference" / "hooks.md"
    target.write_text(render_hooks(), encoding="utf-8")
    print(f"wrote {target.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
