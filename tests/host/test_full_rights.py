"""``inprocess`` says what it means (issue 22): before installing, the admin reads that the
plugin will run with the panel's full rights, in the install plan, on the marketplace card
and in the upload dialog's source (``/isolation``), and ``install --dry-run`` says it too.

Before, nothing said so: the plan and the card listed only the permissions a plugin asks
for, which in-process bind nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from plugdock.config import load_settings
from plugdock.host.app import create_app
from support import make_plugin, pack_into

ADMIN_PASSWORD = "admin-password-1"
MARKET = "/api/v1/marketplace"


def _client(tmp_path: Path, isolation: str) -> TestClient:
    pack_into(make_plugin(tmp_path / "src", "notes"), tmp_path / "modules")
    settings = load_settings(
        home=tmp_path / "instance",
        plugin_local_dir=tmp_path / "modules",
        database_url=f"sqlite:///{tmp_path / 'panel.db'}",
        admin_password=ADMIN_PASSWORD,
        isolation=isolation,
    )
    return TestClient(create_app(settings))


@pytest.fixture
def inprocess(tmp_path: Path) -> Iterator[TestClient]:
    with _client(tmp_path, "inprocess") as client:
        token = client.post(
            "/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}
        ).json()["access_token"]
        client.headers["Authorization"] = f"Bearer {token}"
        yield client


def _says_full_rights(text: str | None) -> None:
    assert text, "nothing says what inprocess means"
    for words in ("full rights", "database", "file", "secrets"):
        assert words in text, text


def test_plan_card_and_upload_say_the_plugin_runs_with_the_panels_full_rights(
    inprocess: TestClient,
) -> None:
    plan = inprocess.get(f"{MARKET}/plan/install/notes")
    assert plan.status_code == 200, plan.text
    _says_full_rights(plan.json()["full_rights"])
    (card,) = inprocess.get(f"{MARKET}/plugins").json()
    _says_full_rights(card["full_rights"])
    isolation = inprocess.get(f"{MARKET}/isolation").json()
    assert isolation["mode"] == "inprocess"
    _says_full_rights(isolation["full_rights"])


def test_process_mode_says_nothing_of_full_rights(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path / "instance", isolation="process")
    assert settings.full_rights_notice is None
    assert load_settings(home=tmp_path / "instance", isolation="inprocess").full_rights_notice


@pytest.mark.slow  # the CLI in a subprocess
def test_install_dry_run_says_it_too(tmp_path: Path) -> None:
    pack_into(make_plugin(tmp_path / "src", "notes"), tmp_path / "modules")
    env = os.environ | {
        "PLUGDOCK_HOME": str(tmp_path / "instance"),
        "PLUGIN_LOCAL_DIR": str(tmp_path / "modules"),
    }

    def dry_run(isolation: str) -> str:
        planned = subprocess.run(
            [sys.executable, "-m", "plugdock", "install", "notes", "--dry-run"],
            env=env | {"PLUGDOCK_ISOLATION": isolation},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert planned.returncode == 0, planned.stderr
        return " ".join(planned.stdout.split())

    _says_full_rights(dry_run("inprocess"))
    assert "full rights" not in dry_run("process")
