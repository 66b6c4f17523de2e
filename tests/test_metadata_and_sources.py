"""metadata.json validation and the local source's catalog."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from plugdock.errors import NotFoundError, PackageError, PlugdockError
from plugdock.package.metadata import parse_metadata, version_in_range
from plugdock.sources import LocalSource, parse_requirement
from support import CHATBOT, make_plugin, pack_into


def test_every_problem_is_reported_at_once() -> None:
    raw = json.dumps(
        {
            "id": "Bad-Id",
            "version": "1.0",
            "backend": {"routes": ["/chat/*"]},
            "frontend": {"routes": ["/api/v1/page"]},
            "requires": "~1",
            "dependencies": {"Nope": ">=1.0.0"},
            "surprise": True,
        }
    )
    with pytest.raises(PackageError) as caught:
        parse_metadata(raw)
    problems = "\n".join(caught.value.problems)
    for expected in [
        "id: 'Bad-Id' is not a valid plugin id",
        "name: required field is missing",
        "version: '1.0' is not a semantic version",
        "route pattern '/chat/*' must be a path under /api/",
        "page route '/api/v1/page'",
        "requires: '~1' is not a comparison",
        "dependencies.Nope",
        "surprise: unknown field",
    ]:
        assert expected in problems
    assert len(caught.value.problems) == 8


@pytest.mark.parametrize("raw", ["not json", "[]", '"x"', b"\xff\xfe"])
def test_metadata_that_is_not_an_object(raw: str | bytes) -> None:
    with pytest.raises(PackageError, match=r"metadata\.json"):
        parse_metadata(raw)


def test_chatbot_metadata_is_valid() -> None:
    meta = parse_metadata((CHATBOT / "metadata.json").read_bytes())
    assert meta.id == "ai_chatbot"
    assert meta.backend.routes == ["/api/v1/chat/*"]
    assert "/support/chats" in meta.frontend.routes


def test_version_ranges() -> None:
    assert version_in_range("0.1.0", ">=0.1.0,<1.0.0")
    assert not version_in_range("1.0.0", ">=0.1.0,<1.0.0")
    assert version_in_range("1.10.0", ">1.9.0")


def test_catalog_orders_versions_by_semver_and_lists_broken_zips(tmp_path: Path) -> None:
    modules = tmp_path / "modules"
    for version in ["1.9.0", "1.10.0", "1.2.0"]:
        pack_into(make_plugin(tmp_path / "src", "notes", version), modules)
    (modules / "garbage.zip").write_bytes(b"this is not a zip")
    (modules / "nometa.zip").write_bytes((modules / "notes_v1.2.0.zip").read_bytes()[:100])

    catalog = LocalSource(modules).catalog()

    assert catalog.plugins["notes"].versions == ("1.10.0", "1.9.0", "1.2.0")
    assert catalog.plugins["notes"].latest == "1.10.0"
    assert {b.location for b in catalog.broken} == {"garbage.zip", "nometa.zip"}
    source = LocalSource(modules)
    assert source.fetch("notes").version == "1.10.0"
    assert source.fetch("notes", "1.9.0").path.name == "notes_v1.9.0.zip"
    with pytest.raises(NotFoundError, match=r"available: 1\.10\.0, 1\.9\.0, 1\.2\.0"):
        source.fetch("notes", "2.0.0")
    with pytest.raises(NotFoundError):
        source.fetch("other")


def test_missing_folder_is_an_empty_catalog(tmp_path: Path) -> None:
    assert LocalSource(tmp_path / "none").catalog().plugins == {}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ai_chatbot", ("ai_chatbot", None)),
        ("ai_chatbot@1.2.3", ("ai_chatbot", "1.2.3")),
        ("x1@latest", ("x1", None)),
    ],
)
def test_requirements(text: str, expected: tuple[str, str | None]) -> None:
    assert parse_requirement(text) == expected


@pytest.mark.parametrize("text", ["../x", "AI", "ai@1.0", "ai@", "ai@../../x", ""])
def test_bad_requirements(text: str) -> None:
    with pytest.raises(PlugdockError):
        parse_requirement(text)


def test_build_metadata_is_refused() -> None:
    """1.0.0+x orders equal to 1.0.0: it could stand in for a published version."""
    with pytest.raises(PackageError, match="build metadata"):
        parse_metadata(json.dumps({"id": "ab", "name": "x", "version": "1.0.0+evil"}))
    assert parse_metadata(json.dumps({"id": "ab", "name": "x", "version": "1.0.0-rc.1"}))


def test_local_source_rereads_a_zip_replaced_in_place(tmp_path: Path) -> None:
    """The source keeps each zip's metadata while the file is unchanged, and no longer."""
    modules = tmp_path / "modules"
    source = LocalSource(modules)
    first = pack_into(make_plugin(tmp_path / "a", "swapped", "1.0.0"), modules)
    assert source.catalog().plugins["swapped"].versions == ("1.0.0",)
    second = pack_into(make_plugin(tmp_path / "b", "swapped", "2.0.0"), tmp_path / "other")
    os.replace(second, first)  # same name, other package
    os.utime(first, ns=(1, 1))  # a different mtime even on a coarse clock
    assert source.catalog().plugins["swapped"].versions == ("2.0.0",)
    first.write_bytes(b"not a zip")
    os.utime(first, ns=(2, 2))
    catalog = source.catalog()
    assert "swapped" not in catalog.plugins
    assert [b.location for b in catalog.broken] == [first.name]
