"""metadata.json validation, the local source's catalog, and the settings that name sources."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from plugdock.config import PluginSource, Settings, load_settings
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


def test_settings_env_names_and_keyword_overrides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PLUGDOCK_<FIELD> for most settings, the older fixed names for a few; keywords win."""
    monkeypatch.setenv("PLUGDOCK_MAX_PACKAGE_BYTES", "1234")
    monkeypatch.setenv("PLUGDOCK_ISOLATION", "process")
    monkeypatch.setenv("PLUGDOCK_SECRET_KEY", "k" * 32)
    monkeypatch.setenv("PLUGIN_SOURCE", "remote")
    monkeypatch.setenv("PLUGIN_SERVER_URL", "https://plugins.example.test")
    monkeypatch.setenv("PLUGIN_LOCAL_DIR", str(tmp_path / "env-modules"))
    monkeypatch.setenv("DATABASE_URL", "sqlite:///from-env.db")
    monkeypatch.setenv("PLUGDOCK_HOME", str(tmp_path / "env-home"))
    settings = load_settings()
    assert settings.max_package_bytes == 1234
    assert settings.isolation == "process"
    assert settings.secret_key is not None and settings.secret_key.get_secret_value() == "k" * 32
    assert settings.plugin_source is PluginSource.REMOTE
    assert settings.plugin_server_url == "https://plugins.example.test"
    assert settings.plugin_local_dir == tmp_path / "env-modules"
    assert settings.db_url == "sqlite:///from-env.db"
    assert settings.home == tmp_path / "env-home"

    overridden = load_settings(max_package_bytes=99, plugin_source="local", database_url=None)
    assert overridden.max_package_bytes == 99
    assert overridden.plugin_source is PluginSource.LOCAL
    assert overridden.db_url == f"sqlite:///{tmp_path / 'env-home' / 'panel.db'}"
    assert Settings(home=tmp_path / "kw-home").home == tmp_path / "kw-home"
    # A keyword may also be the env name itself.
    assert Settings(PLUGDOCK_HOME=tmp_path / "alias-home").home == tmp_path / "alias-home"
    assert Settings(PLUGDOCK_LOCK_TIMEOUT=3).lock_timeout == 3

    # A bad value is reported under the variable the operator has to fix.
    monkeypatch.setenv("PLUGDOCK_MAX_REQUEST_BYTES", "0")
    with pytest.raises(ValidationError) as error:
        load_settings()
    assert [e["loc"] for e in error.value.errors()] == [("PLUGDOCK_MAX_REQUEST_BYTES",)]


# Settings named by their bare field name, each unlike its default: none may be read.
BARE_NAMES = {
    "SECRET_KEY": "a-key-meant-for-another-app",
    "ISOLATION": "process",
    "LOCK_TIMEOUT": "1",
    "MAX_PACKAGE_BYTES": "5",
    "max_package_files": "3",  # names match in any case
}


def _documented_defaults(cwd: Path) -> dict[str, Any]:
    """What BARE_NAMES and HOME must leave as it is (as in ``Settings.model_dump_json``)."""
    return {
        "home": str((cwd / "instance").resolve()),
        "secret_key": None,
        "isolation": "inprocess",
        "lock_timeout": 60.0,
        "max_package_bytes": 100 * 1024 * 1024,
        "max_package_files": 2000,
    }


def _dumped(settings_json: str, keys: dict[str, Any]) -> dict[str, Any]:
    dumped = json.loads(settings_json)
    return {key: dumped[key] for key in keys}


def test_settings_ignore_bare_field_names_in_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the documented names configure plugdock: not HOME (the user's home directory
    would become the instance), nor a SECRET_KEY or ISOLATION meant for something else."""
    monkeypatch.delenv("PLUGDOCK_HOME", raising=False)
    for name, value in BARE_NAMES.items():
        monkeypatch.delenv(f"PLUGDOCK_{name.upper()}", raising=False)
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("HOME", str(tmp_path / "somewhere"))
    monkeypatch.chdir(tmp_path)
    expected = _documented_defaults(tmp_path)
    assert _dumped(load_settings().model_dump_json(), expected) == expected


def _settings_in_fresh_interpreter(env: dict[str, str], script: str, cwd: Path) -> Any:
    """Run ``script`` (prints JSON) where the PLUGDOCK_CONFIG file is read: at import."""
    done = subprocess.run(
        [sys.executable, "-c", script],
        env={"PATH": os.environ.get("PATH", ""), **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_settings_config_file_is_below_env_and_keywords(tmp_path: Path) -> None:
    """The file named by PLUGDOCK_CONFIG (read at import, hence a fresh interpreter)."""
    config = tmp_path / "plugdock.env"
    config.write_text(
        "PLUGIN_SOURCE=remote\n"
        "DATABASE_URL=sqlite:///from-file.db\n"
        "PLUGDOCK_LOCK_TIMEOUT=7\n"
        "PLUGDOCK_MAX_PACKAGE_FILES=11\n"
    )
    env = {
        "HOME": str(tmp_path),
        "PLUGDOCK_CONFIG": str(config),
        "PLUGDOCK_HOME": str(tmp_path / "instance"),
        "PLUGDOCK_LOCK_TIMEOUT": "8",
        "PLUGDOCK_MAX_PACKAGE_FILES": "12",
    }
    script = (
        "import json\n"
        "from plugdock.config import load_settings\n"
        "s = load_settings(max_package_files=13)\n"
        "print(json.dumps([s.plugin_source, s.db_url, s.lock_timeout, s.max_package_files]))\n"
    )
    # file only; file only (a fixed name); env over file; keyword over env and file
    assert _settings_in_fresh_interpreter(env, script, tmp_path) == [
        "remote",
        "sqlite:///from-file.db",
        8.0,
        13,
    ]


def test_settings_config_file_ignores_bare_field_names(tmp_path: Path) -> None:
    """The PLUGDOCK_CONFIG file is read by the documented names only, as the environment is."""
    config = tmp_path / "plugdock.env"
    config.write_text("".join(f"{name}={value}\n" for name, value in BARE_NAMES.items()))
    env = {"HOME": str(tmp_path / "somewhere"), "PLUGDOCK_CONFIG": str(config)}
    script = (
        "import json\n"
        "from plugdock.config import load_settings\n"
        "print(json.dumps(load_settings().model_dump_json()))\n"
    )
    expected = _documented_defaults(tmp_path)
    dumped = _settings_in_fresh_interpreter(env, script, tmp_path)
    assert _dumped(dumped, expected) == expected
