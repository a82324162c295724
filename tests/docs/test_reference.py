"""The documentation builds, its generated pages are current, its examples work."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def _gen_docs() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "gen_docs", ROOT / "scripts" / "gen_docs.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_reference_pages_are_current() -> None:
    stale = _gen_docs().stale_pages()

    assert stale == [], f"stale: {stale}; run: python scripts/gen_docs.py"


def test_gen_docs_writes_every_reference_page(tmp_path: Path) -> None:
    gen_docs = _gen_docs()
    (tmp_path / "reference").mkdir()
    (tmp_path / "reference" / "hooks.md").write_text("old\n", encoding="utf-8")

    assert gen_docs.stale_pages(tmp_path) == list(gen_docs.PAGES)
    written = gen_docs.write_pages(tmp_path)

    assert sorted(p.name for p in written) == ["hooks.md", "resource-types.md"]
    assert gen_docs.stale_pages(tmp_path) == []
    for page in gen_docs.PAGES:
        assert (tmp_path / page).read_text(encoding="utf-8") == (DOCS / page).read_text(
            encoding="utf-8"
        )


def test_gen_docs_check_passes_on_the_committed_pages() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_docs.py"), "--check"],
        capture_output=True,
        text=True,
    )

    assert done.returncode == 0, done.stdout + done.stderr


def test_resource_type_index_links_resolve_to_headings() -> None:
    page = (DOCS / "reference" / "resource-types.md").read_text(encoding="utf-8")
    headings = set(re.findall(r"^## (\S+)$", page, re.MULTILINE))
    anchors = re.findall(r"\]\(#([^)]+)\)", page)

    assert anchors, "the index of resource types has no links"
    assert set(anchors) <= headings, set(anchors) - headings


def test_the_documentation_builds_strictly(tmp_path: Path) -> None:
    """Broken links, missing anchors and pages left out of the nav fail."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "--config-file",
            str(ROOT / "mkdocs.yml"),
            "--site-dir",
            str(tmp_path / "site"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )

    assert done.returncode == 0, done.stderr
    assert (tmp_path / "site" / "tutorial" / "index.html").exists()


def test_every_page_is_in_the_nav() -> None:
    config = YAML(typ="safe").load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    listed: set[str] = set()

    def walk(node: object) -> None:
        if isinstance(node, str):
            listed.add(node)
        elif isinstance(node, list):
            for item in node:
                walk(item)
        elif isinstance(node, dict):
            for value in node.values():
                walk(value)

    walk(config["nav"])
    pages = {
        str(path.relative_to(DOCS))
        for path in DOCS.rglob("*.md")
        if not any(part in ("build", "tests") for part in path.parts)
        and "egg-info" not in str(path)
        and not any(part.startswith("tenfra_") for part in path.parts)
    }

    assert pages - listed == set(), "pages missing from mkdocs.yml's nav"
    assert listed - pages == set(), "nav entries without a page"


def test_the_index_example_recipe_checks_clean(tmp_path: Path) -> None:
    text = (DOCS / "index.md").read_text(encoding="utf-8")
    match = re.search(r"```yaml\n(.*?)```", text, re.DOTALL)
    assert match
    recipe = tmp_path / "recipes" / "web" / "main.yaml"
    (recipe.parent / "assets").mkdir(parents=True)
    (recipe.parent / "assets" / "site.conf.j2").write_text("", encoding="utf-8")
    recipe.write_text(match.group(1), encoding="utf-8")

    done = subprocess.run(
        [str(Path(sys.executable).parent / "tenfra"), "check", str(tmp_path)],
        capture_output=True,
        text=True,
    )

    assert done.returncode == 0, done.stdout + done.stderr


def test_the_kubernetes_example_is_a_valid_provider_deployment(tmp_path: Path) -> None:
    """docs/provider.md's manifests parse, and their provider.yaml loads."""
    from tenfra.provider.config import load_config

    text = (DOCS / "provider.md").read_text(encoding="utf-8")
    section = text.split("### Kubernetes example", 1)[1]
    match = re.search(r"```yaml\n(.*?)```", section, re.DOTALL)
    assert match
    manifests = list(YAML(typ="safe").load_all(match.group(1)))
    by_kind = {manifest["kind"]: manifest for manifest in manifests}

    assert {"Secret", "ConfigMap", "Deployment", "Service"} <= set(by_kind)
    deployment = by_kind["Deployment"]["spec"]
    assert deployment["replicas"] > 1
    container = deployment["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert "TENFRA_PROVIDER_SECRET_KEY" in by_kind["Secret"]["stringData"]

    # The placeholders ("scrypt$...", the mounted key) become real values.
    tenfra = str(Path(sys.executable).parent / "tenfra")
    key = tmp_path / "release.pem"
    subprocess.run([tenfra, "keygen", "--out", str(key)], check=True)
    hashed = subprocess.run(
        [tenfra, "provider", "hash-password", "--password-stdin"],
        input="a password",
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    config = by_kind["ConfigMap"]["data"]["provider.yaml"]
    assert "/etc/tenfra/release.pub" in config and "scrypt$..." in config
    config = config.replace("/etc/tenfra/release.pub", str(tmp_path / "release.pub"))
    path = tmp_path / "provider.yaml"
    path.write_text(config.replace("scrypt$...", hashed), encoding="utf-8")

    loaded = load_config(str(path))

    assert loaded.database.url.startswith("postgresql://")
    assert loaded.releases.url.startswith("s3://")


def test_the_template_plugin_package_passes_its_own_tests(tmp_path: Path) -> None:
    """docs/examples/tenfra-hello, copied out and installed as an author would."""
    package = tmp_path / "tenfra-hello"
    shutil.copytree(
        DOCS / "examples" / "tenfra-hello",
        package,
        ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"),
    )
    site = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--disable-pip-version-check",
            "--target",
            str(site),
            str(package),
        ],
        check=True,
        capture_output=True,
        cwd=tmp_path,
    )
    env = dict(
        os.environ,
        PYTHONPATH=str(site),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    )
    env.pop("TENFRA_DISABLE_PLUGINS", None)

    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=package,
        env=env,
        capture_output=True,
        text=True,
    )

    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 passed" in done.stdout


def _names_under(node: object, key: str) -> set[str]:
    """Every string value of ``key`` (or list of them) anywhere in ``node``."""
    found: set[str] = set()
    if isinstance(node, dict):
        value = node.get(key)
        if isinstance(value, str):
            found.add(value)
        elif isinstance(value, list):
            found.update(item for item in value if isinstance(item, str))
        for child in node.values():
            found |= _names_under(child, key)
    elif isinstance(node, list):
        for child in node:
            found |= _names_under(child, key)
    return found


def test_every_resource_type_example_is_a_valid_task_list(tmp_path: Path) -> None:
    """Each example of the reference, as the tasks of a recipe, checks clean."""
    page = (DOCS / "reference" / "resource-types.md").read_text(encoding="utf-8")
    sections = re.split(r"^## ", page, flags=re.MULTILINE)[1:]
    recipes = tmp_path / "recipes"
    (recipes / "stub").mkdir(parents=True)
    (recipes / "stub" / "main.yaml").write_text("tasks: []\n", encoding="utf-8")
    yaml = YAML(typ="safe")
    without_example = []

    for section in sections:
        name = section.split("\n", 1)[0].strip()
        examples = re.findall(r"```yaml\n(.*?)```", section, re.DOTALL)
        if not examples:
            without_example.append(name)
        for number, example in enumerate(examples):
            tasks = yaml.load(example)
            assert isinstance(tasks, list), f"{name}: the example is not a task list"
            recipe: dict[str, object] = {"tasks": tasks}
            handlers = _names_under(tasks, "notify")
            if handlers:
                recipe["handlers"] = [{"name": h, "debug": "x"} for h in handlers]
            called = {
                str(task["recipe"]["id"]): task["recipe"].get("inputs", {})
                for task in tasks
                if isinstance(task, dict) and isinstance(task.get("recipe"), dict)
            }
            if called:
                recipe["dependencies"] = sorted(called)
                for other, inputs in called.items():
                    stub = recipes / other / "main.yaml"
                    stub.parent.mkdir(parents=True, exist_ok=True)
                    declared = {key: {"type": "any"} for key in inputs}
                    with stub.open("w", encoding="utf-8") as out:
                        YAML().dump({"inputs": declared, "tasks": []}, out)
            target = recipes / f"example-{name}-{number}.yaml"
            with target.open("w", encoding="utf-8") as out:
                YAML().dump(recipe, out)

    assert without_example == [], "resource types without an example"
    done = subprocess.run(
        [str(Path(sys.executable).parent / "tenfra"), "check", str(tmp_path)],
        capture_output=True,
        text=True,
    )

    assert done.returncode == 0, done.stdout + done.stderr


def test_every_yaml_block_in_the_docs_parses() -> None:
    yaml = YAML(typ="rt")
    problems = []
    for page in sorted(DOCS.rglob("*.md")):
        text = page.read_text(encoding="utf-8")
        for match in re.finditer(r"```yaml\n(.*?)```", text, re.DOTALL):
            line = text.count("\n", 0, match.start()) + 2
            try:
                list(yaml.load_all(match.group(1)))
            except Exception as exc:  # collect every broken block
                first = str(exc).splitlines()[0]
                problems.append(f"{page.relative_to(ROOT)}:{line}: {first}")

    assert problems == []
