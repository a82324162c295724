"""The strict converter: no coercion, unknown keys refused, located messages."""

from __future__ import annotations

from typing import Any, Optional

import attrs
import pytest

from tenfra.convert import structure, unstructure, yaml_key
from tenfra.errors import ValidationError
from tenfra.yamlio import load_yaml


@attrs.frozen(kw_only=True)
class Item:
    src: str
    mode: Optional[int] = None
    failed_if: Optional[str] = None
    tags: list[str] = attrs.Factory(list)
    ratio: float = 1.0


@attrs.frozen(kw_only=True)
class Doc:
    name: str
    items: list[Item] = attrs.Factory(list)
    vars: dict[str, Any] = attrs.Factory(dict)
    flag: bool = False
    count: int = 0


CASES = [
    (
        "name: x\nitems:\n  - src: a\n    bogus: 1\n",
        "f.yaml:4:5: unknown key 'bogus' in items[0]; known keys are: failedIf, mode, "
        "ratio, src, tags",
    ),
    (
        "name: x\nitems:\n  - src: 5\n",
        "f.yaml:3:10: items[0].src: expected a string, got an integer; quote it if you "
        "mean the text: '5'",
    ),
    (
        "name: x\nflag: no\n",
        "f.yaml:2:7: flag: expected true or false, got a string; write true or false",
    ),
    ("name: x\ncount: 3.9\n", "f.yaml:2:8: count: expected an integer, got a number"),
    (
        "name: x\nitems: hello\n",
        "f.yaml:2:8: items: expected a list, got a string; write it as a YAML list",
    ),
    ("name: x\nitems:\n  - {}\n", "f.yaml:3:5: items[0].src is required but missing"),
    ("items: []\n", "f.yaml:1:1: name is required but missing"),
    ("name: x\nvars: [1]\n", "f.yaml:2:7: vars: expected a mapping, got a list"),
    (
        "name: x\nitems:\n  - src: a\n    failedif: 1\n",
        "f.yaml:4:5: unknown key 'failedif' in items[0] (did you mean 'failedIf'?); "
        "known keys are: failedIf, mode, ratio, src, tags",
    ),
    (
        "name: x\nitems:\n  - src: a\n    ratio: yes\n",
        "f.yaml:4:12: items[0].ratio: expected a number, got a string",
    ),
]


@pytest.mark.parametrize(("text", "message"), CASES)
def test_errors_are_located_and_exact(text: str, message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        structure(load_yaml(text, "f.yaml"), Doc, source="f.yaml")
    assert str(caught.value) == message


def test_valid_document_structures_with_camel_case_keys() -> None:
    text = "name: x\nitems:\n  - src: a\n    failedIf: rc != 0\n    ratio: 2\n"
    doc = structure(load_yaml(text, "f.yaml"), Doc, source="f.yaml")
    assert doc.items[0].failed_if == "rc != 0"
    assert doc.items[0].ratio == 2.0
    assert unstructure(doc)["items"][0]["failedIf"] == "rc != 0"


def test_several_problems_are_counted() -> None:
    text = "name: 1\ncount: x\n"
    with pytest.raises(ValidationError, match=r"\(and 1 more problem\)"):
        structure(load_yaml(text, "f.yaml"), Doc, source="f.yaml")


def test_yaml_key_is_camel_case_unless_metadata_says_otherwise() -> None:
    @attrs.frozen
    class K:
        host_vars: int = 0
        raw: int = attrs.field(default=0, metadata={"key": "outRaw"})

    keys = [yaml_key(f) for f in attrs.fields(K)]
    assert keys == ["hostVars", "outRaw"]


@attrs.frozen(kw_only=True)
class Mode:
    state: str = attrs.field(
        default="file", validator=attrs.validators.in_(("file", "absent", "link"))
    )
    name: str = attrs.field(
        default="a", validator=attrs.validators.matches_re(r"[a-z]+")
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "state: bogus",
            "doc.yaml:1:1: state: 'bogus' is not one of: absent, file, link",
        ),
        (
            "name: B1",
            "doc.yaml:1:1: name: 'name' must match regex '[a-z]+' ('B1' doesn't)",
        ),
    ],
)
def test_attrs_validator_failures_read_as_one_clean_sentence(
    text: str, message: str
) -> None:
    with pytest.raises(ValidationError) as info:
        structure(load_yaml(text, "doc.yaml"), Mode, source="doc.yaml")
    assert str(info.value) == message
    assert "Attribute(" not in str(info.value)
