"""Stored plugin settings on SQLite, PostgreSQL and MariaDB: what is stored (secrets only
sealed), what a plugin gets, why it needs configuration, rotation, and forgetting."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, update

from plugdock.core.db import audit_log, connect_read, plugin_settings
from plugdock.errors import SecretKeyError, SettingsInvalidError
from plugdock.instance import plugin_settings as store
from plugdock.instance.secret_box import SecretBox, new_key, parse_key

SECRET = "s3cret-value-that-must-not-leak"
SCHEMA = {
    "type": "object",
    "required": ["url", "token"],
    "properties": {
        "url": {"type": "string", "format": "uri"},
        "token": {"type": "string", "writeOnly": True},
        "count": {"type": "integer", "minimum": 1, "default": 3},
        "loud": {"type": "boolean", "default": False},
    },
}


def box() -> SecretBox:
    return SecretBox(parse_key(new_key()))


def test_values_round_trip_and_secrets_are_stored_sealed(engine: Engine) -> None:
    sealer = box()
    with connect_read(engine) as conn:
        assert store.problems(conn, "demo", SCHEMA, sealer) == {
            "url": "required",
            "token": "required",
        }
    with engine.begin() as conn:
        store.save(
            conn,
            "demo",
            SCHEMA,
            {"url": "https://x.example/", "token": SECRET},
            sealer,
            actor="alice",
        )
        store.save(conn, "demo", SCHEMA, {"count": 5, "loud": True}, sealer, actor="alice")
    with connect_read(engine) as conn:
        assert store.effective_values(conn, "demo", SCHEMA, sealer) == {
            "url": "https://x.example/",
            "token": SECRET,
            "count": 5,
            "loud": True,
        }
        assert store.problems(conn, "demo", SCHEMA, sealer) == {}
        rows = conn.execute(select(plugin_settings)).all()
        audits = conn.execute(select(audit_log.c.detail)).scalars().all()
    assert all(SECRET not in row.value for row in rows)
    assert {row.name: row.secret for row in rows}["token"] is True
    assert json.loads({row.name: row.value for row in rows}["count"]) == 5
    assert SECRET not in json.dumps(audits) and "replaced (secret)" in json.dumps(audits)

    # A wrong value: nothing stored, one message per setting.
    with pytest.raises(SettingsInvalidError) as refused, engine.begin() as conn:
        store.save(conn, "demo", SCHEMA, {"count": 0, "url": "ftp:/x"}, sealer, actor=None)
    assert set(refused.value.problems) == {"count", "url"}

    # Another plugin sees none of it; a key that does not open says so.
    with connect_read(engine) as conn:
        assert store.effective_values(conn, "other", SCHEMA, sealer) == {"count": 3, "loud": False}
        with pytest.raises(SecretKeyError, match="does not open"):
            store.effective_values(conn, "demo", SCHEMA, box())
        states = {s.name: s for s in store.describe(conn, "demo", SCHEMA, box())}
    assert states["url"].value == "https://x.example/"  # the rest still shows
    assert "does not open" in (states["token"].problem or "")
    assert states["token"].value is None

    # Rotation: all or nothing, then the new key opens them.
    new = box()
    with pytest.raises(SecretKeyError), engine.begin() as conn:
        store.rotate(conn, box(), new)  # not the key they were sealed with
    with engine.begin() as conn:
        assert store.rotate(conn, sealer, new) == 1
    with connect_read(engine) as conn:
        assert store.effective_values(conn, "demo", SCHEMA, new)["token"] == SECRET

    with engine.begin() as conn:
        store.forget(conn, "demo")
    with connect_read(engine) as conn:
        assert conn.execute(select(plugin_settings)).all() == []


def test_a_ciphertext_moved_to_another_plugin_does_not_open(engine: Engine) -> None:
    sealer = box()
    with engine.begin() as conn:
        store.save(conn, "victim", SCHEMA, {"token": SECRET}, sealer, actor=None)
        store.save(conn, "thief", SCHEMA, {"token": "mine"}, sealer, actor=None)
        sealed = conn.execute(
            select(plugin_settings.c.value).where(plugin_settings.c.plugin_id == "victim")
        ).scalar_one()
        conn.execute(
            update(plugin_settings)
            .where(plugin_settings.c.plugin_id == "thief")
            .values(value=sealed)
        )
    with connect_read(engine) as conn, pytest.raises(SecretKeyError, match=r"thief\.token"):
        store.effective_values(conn, "thief", SCHEMA, sealer)


def test_the_environment_overrides_in_the_declared_type(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLUGDOCK_PLUGIN_DEMO_COUNT", "7")
    monkeypatch.setenv("PLUGDOCK_PLUGIN_DEMO_LOUD", "yes")
    with connect_read(engine) as conn:
        values = store.effective_values(conn, "demo", SCHEMA, None)
        states = {s.name: s for s in store.describe(conn, "demo", SCHEMA, None)}
    assert values == {"count": 7, "loud": True}
    assert states["count"].source == "environment" and states["url"].source == "unset"


def test_the_key_file_is_created_private_once(tmp_path: Path) -> None:
    from plugdock.config import load_settings

    settings = load_settings(home=tmp_path / "instance")
    settings.home.mkdir()
    assert SecretBox.from_settings(settings, create=False) is None
    first = SecretBox.from_settings(settings)
    assert first is not None
    assert settings.settings_key_path.stat().st_mode & 0o777 == 0o600
    again = SecretBox.from_settings(settings)
    assert again is not None and again.open("p", "k", first.seal("p", "k", "v")) == "v"
