"""YAML 1.2 loading: strings stay strings, duplicates and tabs are located errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from tenfra.errors import YamlError
from tenfra.yamlio import dump_yaml, load_yaml, load_yaml_file, locate, to_plain


def test_yaml_1_2_semantics() -> None:
    data = to_plain(load_yaml("a: yes\nb: on\nc: 0o644\nd: 0644\ne: 1.10\n", "f"))
    assert data == {"a": "yes", "b": "on", "c": 420, "d": 644, "e": 1.1}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "a: 1\na: 2\n",
            "f.yaml:2:1: duplicate key 'a' in the same mapping; keep one of them",
        ),
        (
            "a:\n\t- 1\n",
            "f.yaml:2:1: a tab character is used for indentation; "
            "YAML allows only spaces",
        ),
        (
            "a: [1,\n",
            "f.yaml:2:1: not valid YAML: expected the node content, but found "
            "'<stream end>'",
        ),
    ],
)
def test_bad_yaml_is_located(text: str, message: str) -> None:
    with pytest.raises(YamlError) as caught:
        load_yaml(text, "f.yaml")
    assert str(caught.value) == message


def test_missing_and_binary_files(tmp_path: Path) -> None:
    with pytest.raises(YamlError, match="file not found"):
        load_yaml_file(tmp_path / "nope.yaml")
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(YamlError, match="not UTF-8"):
        load_yaml_file(binary)


def test_locate_points_at_nested_values() -> None:
    data = load_yaml("tasks:\n  - name: x\n    copy:\n      mode: 644\n", "r.yaml")
    assert str(locate(data, ["tasks", 0, "copy", "mode"], "r.yaml")) == "r.yaml:4:13"
    assert str(locate(data, ["tasks", 0, "nope"], "r.yaml")) == "r.yaml:2:5"


def test_dump_round_trips_plain_data() -> None:
    value = {"b": [1, "two"], "a": {"yes": "no"}}
    assert to_plain(load_yaml(dump_yaml(value), "x")) == value
