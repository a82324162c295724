"""Fixtures for the end-to-end tests: the demo's pipeline driver (scripts/demo.py)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def load_demo_module() -> ModuleType:
    """Import scripts/demo.py (not a package module) once per process."""
    name = "tenfra_demo_script"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / "demo.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def demo_module() -> ModuleType:
    """scripts/demo.py as a module: ``Demo``, ``Agent``, ``podman_problem``..."""
    return load_demo_module()
