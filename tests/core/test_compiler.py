"""The compiler: layout, isolation, determinism, tampering, errors and diff."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Optional

import pytest

from tenfra import release
from tenfra.compiler import (
    CompileOptions,
    CompileResult,
    compile_release,
    diff_releases,
    verify_release,
)
from tenfra.errors import (
    CompileError,
    InputError,
    UserError,
    ValidationError,
    VerificationError,
)
from tenfra.pluginmanager import reset_plugin_manager

CREATED = dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)
SOON = CREATED + dt.timedelta(days=1)
CANARY = "CANARY-7f3e9a"
DB_SECRET = "DB-SECRET-41"

INVENTORY = {
    "vars": {"domain": "example.com"},
    "varsSources": [{"file": "vars/common.yaml"}],
    "hosts": {
        "web-01": {"vars": {"canary": CANARY}},
        "web-02": None,
        "db-01": {"vars": {"db_password": DB_SECRET}},
        "cache-01": None,
    },
    "groups": {"web": "web-*", "db": ["db-01"]},
}

WEB = """\
name: web server
targets: [web]
dependencies: [base]
otherHosts: [db]
tasks:
  - name: site config
    template:
      src: site.conf.j2
      dest: /etc/site.conf
  - copy: src=static dest=/var/www/
"""

BASE = """\
name: base
targets: nothing-matches-*
tasks:
  - exec: cmd=true
"""

DB = """\
name: database
targets: "db-*"
tasks:
  - copy: src=pg.conf dest=/etc/pg.conf
"""

BOOT = """\
name: bootstrap
targets: all
phase: bootstrap
tasks:
  - exec: cmd=true
"""

FILES: dict[str, Any] = {
    "inventory.yaml": INVENTORY,
    "vars/common.yaml": {"ntp": ["pool.ntp.org"]},
    "recipes/web/main.yaml": WEB,
    "recipes/web/assets/site.conf.j2": "server_name {{ domain }};\n",
    "recipes/web/assets/static/index.html": "<html></html>\n",
    "recipes/base/main.yaml": BASE,
    "recipes/db.yaml": DB,
    "recipes/assets/pg.conf": "max_connections = 10\n",
    "recipes/boot.yaml": BOOT,
    "plugins/acme.py": '"""Acme site plugin."""\n',
}


@pytest.fixture(autouse=True)
def fresh_plugins() -> Iterator[None]:
    reset_plugin_manager()
    yield
    reset_plugin_manager()


@pytest.fixture(scope="module")
def key() -> Any:
    return release.generate_private_key()


@pytest.fixture
def repo(tenfra_repo: Callable[[Mapping[str, Any]], Path]) -> Path:
    return tenfra_repo(FILES)


def run(
    repo: Path,
    out: Any,
    key: Any,
    *,
    sequence: Optional[int] = None,
    created: Optional[dt.datetime] = CREATED,
    **extra: Any,
) -> CompileResult:
    options = CompileOptions(
        inventory=repo / "inventory.yaml",
        recipes=repo / "recipes",
        out=str(out),
        signing_key=key,
        sequence=sequence,
        created=created,
        **extra,
    )
    return compile_release(options)


def bundle_of(out: Path, result: CompileResult, host: str) -> dict[str, Any]:
    data = (out / "releases" / result.name / "hosts" / f"{host}.json").read_bytes()
    value: dict[str, Any] = json.loads(data)
    return value


def tree(root: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


# -- layout and content --------------------------------------------------------


def test_release_layout_and_verification(repo: Path, tmp_path: Path, key: Any) -> None:
    out = tmp_path / "out"
    result = run(repo, out, key)

    assert not result.unchanged and result.sequence == 1
    assert result.hosts == 4 and result.recipes == 4
    assert (out / "LATEST").read_text() == f"{result.name}\n"
    folder = out / "releases" / result.name
    manifest_bytes = (folder / "manifest.json").read_bytes()
    manifest = release.verify_manifest(
        manifest_bytes,
        (folder / "manifest.json.sig").read_bytes(),
        key.public_key(),
    )
    assert manifest["release"] == result.release
    assert manifest["keyId"] == release.key_id(key)
    assert manifest["created"] == "2030-01-01T00:00:00Z"
    assert manifest["expires"] == "2030-01-31T00:00:00Z"
    assert manifest["plugins"]["site:acme"] == "site"
    assert manifest["plugins"]["files"]
    assert sorted(manifest["hosts"]) == ["cache-01", "db-01", "web-01", "web-02"]

    for host, digest in manifest["hosts"].items():
        data = (folder / "hosts" / f"{host}.json").read_bytes()
        assert release.digest_of(data) == digest
        signature = (folder / "hosts" / f"{host}.json.sig").read_bytes()
        bundle = release.verify_bundle(
            data, signature, key.public_key(), host=host, min_sequence=0, now=SOON
        )
        assert bundle["release"] == result.release and bundle["sequence"] == 1
        for asset in bundle["assets"]:
            release.verify_asset((out / "assets" / asset).read_bytes(), asset)
    # Every asset is stored once, under its digest.
    stored = sorted(p.name for p in (out / "assets").iterdir())
    assert stored == manifest["assets"]
    assert len(stored) == 4  # site.conf.j2, index.html, pg.conf, acme.py
    verify_release(release.open_release(str(out)), key.public_key())


def test_bundles_hold_only_what_targets_the_host(
    repo: Path, tmp_path: Path, key: Any
) -> None:
    out = tmp_path / "out"
    result = run(repo, out, key)
    web = bundle_of(out, result, "web-01")
    db = bundle_of(out, result, "db-01")
    cache = bundle_of(out, result, "cache-01")

    # web gets its recipe, the dependency it calls and the bootstrap recipe.
    assert sorted(web["recipes"]) == ["base", "boot", "web"]
    assert web["run"] == {"bootstrap": ["boot"], "runtime": ["web"]}
    assert web["recipes"]["web"]["source"] == WEB
    assert web["recipes"]["web"]["path"] == "web/main.yaml"
    assert sorted(web["recipes"]["web"]["assets"]) == [
        "site.conf.j2",
        "static/index.html",
    ]
    assert web["groups"] == ["web"]
    assert web["vars"] == {
        "canary": CANARY,
        "domain": "example.com",
        "ntp": ["pool.ntp.org"],
    }
    # otherHosts: the db hosts' vars, because recipe web asked for them.
    assert list(web["otherHosts"]) == ["db-01"]
    assert web["otherHosts"]["db-01"]["db_password"] == DB_SECRET

    assert sorted(db["recipes"]) == ["boot", "db"]
    assert db["recipes"]["db"]["path"] == "db.yaml"
    assert list(db["recipes"]["db"]["assets"]) == ["pg.conf"]
    assert db["otherHosts"] == {}
    assert sorted(cache["recipes"]) == ["boot"]
    assert cache["run"] == {"bootstrap": ["boot"], "runtime": []}

    # Assets: exactly those of the bundled recipes, plus the site plugins.
    site = set(web["sitePlugins"].values())
    assert list(web["sitePlugins"]) == ["acme.py"]
    for bundle in (web, db, cache):
        used = set(site)
        for entry in bundle["recipes"].values():
            used |= set(entry["assets"].values())
        assert set(bundle["assets"]) == used
    # Top-level recipes share the recipes/assets folder.
    assert list(cache["recipes"]["boot"]["assets"]) == ["pg.conf"]
    assert not set(web["recipes"]["web"]["assets"].values()) & set(cache["assets"])


def test_canary_reaches_only_its_host(repo: Path, tmp_path: Path, key: Any) -> None:
    out = tmp_path / "out"
    result = run(repo, out, key)
    files = tree(out)
    holders = sorted(name for name, data in files.items() if CANARY.encode() in data)
    assert holders == [f"releases/{result.name}/hosts/web-01.json"]
    # The db secret reaches db-01 and the web hosts that asked for otherHosts
    # [db], never the cache host.
    holders = sorted(
        name.rsplit("/", 1)[-1]
        for name, data in files.items()
        if DB_SECRET.encode() in data
    )
    assert holders == ["db-01.json", "web-01.json", "web-02.json"]


def test_memory_filesystem(repo: Path, key: Any) -> None:
    import fsspec

    url = f"memory://tenfra-{uuid.uuid4().hex}"
    result = run(repo, url, key)
    opened = release.open_release(url)
    assert opened.name == result.name
    data, signature = opened.bundle("web-02")
    bundle = release.verify_bundle(
        data, signature, key.public_key(), host="web-02", min_sequence=0, now=SOON
    )
    asset = bundle["recipes"]["web"]["assets"]["site.conf.j2"]
    assert opened.asset(asset) == b"server_name {{ domain }};\n"
    fsspec.filesystem("memory").rm(url.removeprefix("memory://"), recursive=True)


# -- determinism, sequences, unchanged inputs ----------------------------------


def test_same_inputs_give_identical_bytes(
    repo: Path, tmp_path: Path, key: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = run(repo, tmp_path / "one", key, sequence=3)
    reset_plugin_manager()
    second = run(repo, tmp_path / "two", key, sequence=3)
    assert first.release == second.release
    assert tree(tmp_path / "one") == tree(tmp_path / "two")

    # The same repository elsewhere on disk, time from SOURCE_DATE_EPOCH.
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(repo, elsewhere)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", str(int(CREATED.timestamp())))
    monkeypatch.chdir(tmp_path)
    reset_plugin_manager()
    third = run(elsewhere, tmp_path / "three", key, sequence=3, created=None)
    assert third.release == first.release
    assert tree(tmp_path / "three") == tree(tmp_path / "one")


def test_unchanged_inputs_write_nothing(repo: Path, tmp_path: Path, key: Any) -> None:
    out = tmp_path / "out"
    first = run(repo, out, key)
    before = tree(out)
    reset_plugin_manager()
    again = run(repo, out, key, created=CREATED + dt.timedelta(hours=1))
    assert again.unchanged and again.name == first.name
    assert tree(out) == before

    # A changed var makes a new release with the next sequence.
    inventory = json.loads(json.dumps(INVENTORY))
    inventory["vars"]["domain"] = "example.org"
    from tenfra.testing import write_tree

    write_tree(repo, {"inventory.yaml": inventory})
    reset_plugin_manager()
    second = run(repo, out, key)
    assert not second.unchanged and second.sequence == 2
    assert second.release != first.release
    assert (out / "LATEST").read_text().strip() == second.name
    assert [r.name for r in release.list_releases(str(out))] == [
        first.name,
        second.name,
    ]
    # An explicit sequence may not go backwards.
    write_tree(repo, {"vars/common.yaml": {"ntp": []}})
    reset_plugin_manager()
    with pytest.raises(CompileError, match="is not greater than the latest release"):
        run(repo, out, key, sequence=2)


# -- tampering with a compiled release -----------------------------------------


def test_compiled_release_rejects_any_change(
    repo: Path, tmp_path: Path, key: Any
) -> None:
    out = tmp_path / "out"
    result = run(repo, out, key, sequence=7)
    folder = out / "releases" / result.name
    public = key.public_key()
    data = (folder / "hosts" / "db-01.json").read_bytes()
    signature = (folder / "hosts" / "db-01.json.sig").read_bytes()

    def check(payload: bytes, sig: Optional[bytes], **kwargs: Any) -> None:
        options: dict[str, Any] = {"host": "db-01", "min_sequence": 6, "now": SOON}
        options.update(kwargs)
        release.verify_bundle(payload, sig, public, **options)

    check(data, signature)
    for index in range(len(data)):
        changed = bytearray(data)
        changed[index] = (changed[index] + 1) % 256
        with pytest.raises(VerificationError):
            check(bytes(changed), signature)
    for message, payload, sig, kwargs in [
        ("has no signature", data, None, {}),
        ("does not match its signature", data[: len(data) // 2], signature, {}),
        ("compiled for host 'db-01'", data, signature, {"host": "web-01"}),
        ("already applied", data, signature, {"min_sequence": 8}),
        ("already applied", data, signature, {"min_sequence": 7}),
        ("expired", data, signature, {"now": SOON + dt.timedelta(days=40)}),
    ]:
        with pytest.raises(VerificationError, match=message):
            check(payload, sig, **kwargs)
    # Re-applying the release the host already runs is fine.
    check(data, signature, min_sequence=7, current_release=result.release)

    manifest = (folder / "manifest.json").read_bytes()
    manifest_sig = (folder / "manifest.json.sig").read_bytes()
    for index in range(len(manifest)):
        changed = bytearray(manifest)
        changed[index] = (changed[index] + 1) % 256
        with pytest.raises(VerificationError):
            release.verify_manifest(bytes(changed), manifest_sig, public)
    with pytest.raises(VerificationError, match="has no signature"):
        release.verify_manifest(manifest, None, public)

    # verify_release notices a bundle swapped for another host's.
    (folder / "hosts" / "db-01.json").write_bytes(
        (folder / "hosts" / "web-01.json").read_bytes()
    )
    with pytest.raises(VerificationError, match="does not match the digest"):
        verify_release(release.open_release(str(out)), public)


def test_unsigned_release(repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(CompileError, match="No signing key"):
        run(repo, out, None)
    assert not out.exists()
    result = run(repo, out, None, unsigned=True)
    assert not result.signed and result.key_id is None
    assert not list(out.rglob("*.sig"))
    folder = out / "releases" / result.name
    manifest = release.verify_manifest(
        (folder / "manifest.json").read_bytes(), None, None, allow_unsigned=True
    )
    assert manifest["keyId"] is None
    data = (folder / "hosts" / "web-01.json").read_bytes()
    with pytest.raises(VerificationError, match="has no signature"):
        release.verify_bundle(data, None, None, host="web-01", min_sequence=0, now=SOON)
    bundle = release.verify_bundle(
        data, None, None, host="web-01", min_sequence=0, now=SOON, allow_unsigned=True
    )
    assert bundle["host"] == "web-01"


# -- errors and warnings -------------------------------------------------------


def _with(repo: Path, files: Mapping[str, Any]) -> Path:
    from tenfra.testing import write_tree

    return write_tree(repo, files)


@pytest.mark.parametrize(
    ("files", "error", "message"),
    [
        (
            {"recipes/web/main.yaml": WEB.replace("[base]", "[nope]")},
            ValidationError,
            r"recipes/web/main\.yaml:3:\d+: dependency 'nope' is not a recipe",
        ),
        (
            {"recipes/base/main.yaml": BASE + "dependencies: [web]\n"},
            ValidationError,
            "circular dependency: .*web -> base -> web|base -> web -> base",
        ),
        (
            {"recipes/web/main.yaml": WEB.replace("site.conf.j2", "missing.j2")},
            CompileError,
            r"recipes/web/main\.yaml:8:\d+: recipe 'web' uses the asset 'missing\.j2'"
            r", which is not in .*recipes/web/assets",
        ),
        (
            {"recipes/db.yaml": DB.replace("pg.conf dest", "conf.d/*.conf dest")},
            CompileError,
            r"uses the asset 'conf\.d/\*\.conf'",
        ),
        (
            {
                "inventory.yaml": {
                    **INVENTORY,
                    "varsSources": [{"file": "vars/absent.yaml"}],
                }
            },
            CompileError,
            r"A compile-time vars source failed, so no release was written: "
            r".*inventory\.yaml:\d+:\d+: vars source 'file'.*absent\.yaml",
        ),
        (
            {"inventory.yaml": {"hosts": {}}},
            CompileError,
            "the inventory has no hosts",
        ),
        (
            {"recipes/db.yaml": DB.replace('"db-*"', '"db-[3:1]"')},
            InputError,
            r"recipes/db\.yaml:2:\d+: .*range",
        ),
    ],
    ids=[
        "unknown dependency",
        "cycle",
        "missing asset",
        "glob matching no asset",
        "failing vars source",
        "no hosts",
        "bad pattern",
    ],
)
def test_compile_errors(
    repo: Path,
    tmp_path: Path,
    key: Any,
    files: Mapping[str, Any],
    error: type[Exception],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _with(repo, files)
    monkeypatch.chdir(repo)
    out = tmp_path / "out"
    with pytest.raises(error, match=message) as info:
        run(Path("."), out, key)
    assert isinstance(info.value, UserError)
    assert not (out / "LATEST").exists()


def test_recipes_folder_must_exist(repo: Path, tmp_path: Path, key: Any) -> None:
    shutil.rmtree(repo / "recipes")
    with pytest.raises(CompileError, match="the recipes folder does not exist"):
        run(repo, tmp_path / "out", key)


def test_patterns_matching_no_host_warn(
    repo: Path,
    tmp_path: Path,
    key: Any,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _with(repo, {"recipes/web/main.yaml": WEB.replace("[db]", "[nosuch-*]")})
    monkeypatch.chdir(repo)
    result = run(Path("."), tmp_path / "out", key)
    assert len(result.warnings) == 2
    targets, others = result.warnings
    assert targets.startswith("recipes/base/main.yaml:2:")
    assert "the targets of recipe 'base' (nothing-matches-*) match no host" in targets
    assert "the otherHosts of recipe 'web' (nosuch-*) match no host" in others
    assert "match no host" in caplog.text


def test_progress_is_reported(repo: Path, tmp_path: Path, key: Any) -> None:
    seen: list[tuple[str, int, int]] = []
    options = CompileOptions(
        inventory=repo / "inventory.yaml",
        recipes=repo / "recipes",
        out=str(tmp_path / "out"),
        signing_key=key,
        progress_every=2,
    )
    compile_release(options, progress=lambda *args: seen.append(args))
    assert ("hashed", 2, 4) in seen and ("hashed", 4, 4) in seen
    assert ("written", 4, 4) in seen
    assert ("hashed", 1, 4) not in seen


# -- diff ----------------------------------------------------------------------


def test_diff_shows_changed_template_for_exactly_its_hosts(
    repo: Path, tmp_path: Path, key: Any
) -> None:
    out = tmp_path / "out"
    first = run(repo, out, key)
    _with(
        repo,
        {
            "recipes/web/assets/site.conf.j2": "server_name {{ domain }} www;\n",
            "inventory.yaml": {
                **INVENTORY,
                "hosts": {**INVENTORY["hosts"], "cache-01": {"vars": {"size": 2}}},
            },
        },
    )
    reset_plugin_manager()
    second = run(repo, out, key)
    old = release.open_release(str(out), first.sequence)
    new = release.open_release(str(out))
    diffs = {d.host: d for d in diff_releases(old, new)}

    touched = sorted(h for h, d in diffs.items() if "web" in d.recipes)
    assert touched == ["web-01", "web-02"]
    assert diffs["web-01"].recipes == {"web": ["asset site.conf.j2 changed"]}
    assert diffs["web-01"].status == "changed"
    assert diffs["db-01"].status == "unchanged"
    assert diffs["cache-01"].recipes == {}
    assert diffs["cache-01"].vars == {"added": ["size"]}
    assert second.sequence == 2

    only = diff_releases(old, new, ["web-02"])
    assert [d.host for d in only] == ["web-02"]
    with pytest.raises(CompileError, match="Host 'nosuch' is in neither release"):
        diff_releases(old, new, ["nosuch"])


# -- JSON inventories ----------------------------------------------------------------


def test_json_inventory_gives_the_same_release(
    repo: Path, tmp_path: Path, key: Any
) -> None:
    yaml_result = run(repo, tmp_path / "yaml", key, sequence=1)
    (repo / "inventory.yaml").write_text(json.dumps(INVENTORY, indent=2))
    reset_plugin_manager()
    json_result = run(repo, tmp_path / "json", key, sequence=1)
    assert json_result.release == yaml_result.release
    assert tree(tmp_path / "json") == tree(tmp_path / "yaml")


@pytest.mark.parametrize(
    ("text", "error", "message"),
    [
        (
            '{"hosts": {"a": null},\n "hosts": {"b": null}}',
            InputError,
            r"inventory\.yaml:2:\d+: .*duplicate key",
        ),
        (
            '{"hosts": {"a": null},\n "nonsense": 1}',
            ValidationError,
            r"inventory\.yaml:2:\d+: .*nonsense",
        ),
        ('{"hosts": {"a": null},', InputError, r"inventory\.yaml:\d+:\d+"),
    ],
    ids=["duplicate key", "unknown key", "truncated"],
)
def test_json_inventory_errors_keep_positions(
    repo: Path,
    tmp_path: Path,
    key: Any,
    text: str,
    error: type[Exception],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (repo / "inventory.yaml").write_text(text)
    monkeypatch.chdir(repo)
    with pytest.raises(error, match=message):
        run(Path("."), tmp_path / "out", key)


# -- what the agent does with a bundle ------------------------------------------------


def test_bundle_rebuilds_the_recipe_set(repo: Path, tmp_path: Path, key: Any) -> None:
    from tenfra.recipe import RecipeSet

    out = tmp_path / "out"
    result = run(repo, out, key)
    bundle = bundle_of(out, result, "web-01")
    staged = tmp_path / "staged"
    for entry in bundle["recipes"].values():
        folder = (staged / entry["path"]).parent
        for name, digest in entry["assets"].items():
            target = folder / "assets" / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes((out / "assets" / digest).read_bytes())
    texts = {rid: (e["path"], e["source"]) for rid, e in bundle["recipes"].items()}
    recipes = RecipeSet(staged, texts=texts)
    assert recipes.closure(bundle["run"]["runtime"]) == ["base", "web"]
    web = recipes.get("web")
    assert web.other_hosts == ["db"] and web.dependencies == ["base"]
    original = repo / "recipes/web/assets"
    for name in ("site.conf.j2", "static/index.html"):
        copied = web.dir / "assets" / name
        assert copied.read_bytes() == (original / name).read_bytes()
