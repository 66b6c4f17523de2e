"""A Python client generated from the panel's live OpenAPI document drives a plugin's life
(issue 24, problem 13).

openapi-python-client writes the client into a temporary folder; the test imports it and
installs, upgrades (confirming the new permission the upgrade asks for: its 409 arrives as a
typed ``ErrorOut`` naming it), disables, enables and uninstalls through it alone. A non-admin
and an anonymous client get typed 403 and 401 answers, and the document tells the client
which calls need a token. Before the fix every failure but 422 came back untyped
(``parsed is None``), and a 422 with a string ``detail`` crashed the client.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from panel import Panel, start_panel
from support import make_plugin, pack_into

pytestmark = pytest.mark.slow  # a panel, and the generator (about 7 s)

GENERATOR = Path(sys.executable).parent / "openapi-python-client"
PERMISSION = "core:users:read"


@pytest.fixture(scope="module")
def panel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Panel]:
    tmp = tmp_path_factory.mktemp("client")
    for version, permissions in (("1.0.0", []), ("1.1.0", [PERMISSION])):
        folder = make_plugin(tmp / "src", "greeter", version, metadata={"permissions": permissions})
        pack_into(folder, tmp / "modules")
    running = start_panel(tmp, f"sqlite:///{tmp / 'instance' / 'panel.db'}")
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def generated(panel: Panel, tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    """The client package, generated from the live document and imported."""
    folder = tmp_path_factory.mktemp("generated")
    (folder / "openapi.json").write_bytes(httpx.get(f"{panel.url}/openapi.json").content)
    package = "plugdock_contract_client"
    run = subprocess.run(
        [
            str(GENERATOR),
            "generate",
            "--path",
            "openapi.json",
            "--meta",
            "none",
            "--output-path",
            package,
        ],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ | {"PATH": f"{GENERATOR.parent}:{os.environ.get('PATH', '')}"},
    )
    assert run.returncode == 0, run.stdout + run.stderr
    # Everything in the document became part of the client: no operation was skipped.
    assert "Warning" not in run.stdout, run.stdout
    sys.path.insert(0, str(folder))
    try:
        return importlib.import_module(package)
    finally:
        sys.path.remove(str(folder))


def api(client_package: ModuleType, name: str) -> Any:
    """The generated module of one operation, found by the start of its file name."""
    folder = Path(client_package.__file__).parent / "api" / "marketplace"
    found = [p.stem for p in folder.glob(f"{name}_api_v1_*.py")]
    assert len(found) == 1, found
    return importlib.import_module(f"{client_package.__name__}.api.marketplace.{found[0]}")


def test_the_whole_lifecycle_with_typed_answers(panel: Panel, generated: ModuleType) -> None:
    models = importlib.import_module(f"{generated.__name__}.models")
    admin = generated.AuthenticatedClient(
        base_url=panel.url, token=panel.login(), raise_on_unexpected_status=True, timeout=60
    )

    installed = api(generated, "install").sync_detailed(
        client=admin, body=models.InstallRequest(plugin_id="greeter", version="1.0.0")
    )
    assert installed.status_code == 200
    assert isinstance(installed.parsed, models.InstallResponse)
    assert installed.parsed.version == "1.0.0"

    # The upgrade asks for a permission the installation was not granted: a typed 409.
    refused = api(generated, "upgrade").sync_detailed(
        client=admin, body=models.UpgradeRequest(plugin_id="greeter")
    )
    assert refused.status_code == 409
    assert isinstance(refused.parsed, models.ErrorOut), refused.content
    assert refused.parsed.permissions == [PERMISSION]
    assert PERMISSION in refused.parsed.detail

    upgraded = api(generated, "upgrade").sync_detailed(
        client=admin,
        body=models.UpgradeRequest(plugin_id="greeter", grant=refused.parsed.permissions),
    )
    assert upgraded.status_code == 200, upgraded.content
    assert isinstance(upgraded.parsed, models.UpgradeResponse)
    assert (upgraded.parsed.version, upgraded.parsed.permissions) == ("1.1.0", [PERMISSION])

    disabled = api(generated, "disable").sync_detailed("greeter", client=admin)
    assert isinstance(disabled.parsed, models.ToggleResponse) and not disabled.parsed.enabled
    again = api(generated, "disable").sync_detailed("greeter", client=admin)
    assert again.status_code == 409 and isinstance(again.parsed, models.ErrorOut)
    enabled = api(generated, "enable").sync_detailed("greeter", client=admin)
    assert isinstance(enabled.parsed, models.ToggleResponse) and enabled.parsed.enabled

    # An invalid version: a 422 the client parses (a list of issues), not a crash.
    invalid = api(generated, "install").sync_detailed(
        client=admin, body=models.InstallRequest(plugin_id="greeter", version="01.0.0")
    )
    assert invalid.status_code == 422
    assert isinstance(invalid.parsed, models.ValidationErrorOut)
    assert invalid.parsed.detail[0].loc[-1] == "version"

    removed = api(generated, "uninstall").sync_detailed("greeter", client=admin)
    assert removed.status_code == 200
    assert isinstance(removed.parsed, models.UninstallResponse)
    gone = api(generated, "uninstall").sync_detailed("greeter", client=admin)
    assert gone.status_code == 404 and isinstance(gone.parsed, models.ErrorOut)


def test_refusals_are_typed_for_others(panel: Panel, generated: ModuleType) -> None:
    models = importlib.import_module(f"{generated.__name__}.models")
    with panel.client(panel.login()) as admin:
        created = admin.post(
            "/api/v1/users", json={"username": "reader", "password": "reader-pass-1234"}
        )
        assert created.status_code == 201, created.text
    reader = generated.AuthenticatedClient(
        base_url=panel.url,
        token=panel.login("reader", "reader-pass-1234"),
        raise_on_unexpected_status=True,
    )
    forbidden = api(generated, "install").sync_detailed(
        client=reader, body=models.InstallRequest(plugin_id="greeter")
    )
    assert forbidden.status_code == 403
    assert isinstance(forbidden.parsed, models.ErrorOut)

    anonymous = generated.Client(base_url=panel.url, raise_on_unexpected_status=True)
    unsigned = api(generated, "catalog").sync_detailed(client=anonymous)
    assert unsigned.status_code == 401
    assert isinstance(unsigned.parsed, models.ErrorOut)

    # Which calls need a token: the document says it, operation by operation.
    paths = httpx.get(f"{panel.url}/openapi.json").json()["paths"]
    assert paths["/api/v1/marketplace/install"]["post"]["security"]
    assert paths["/api/v1/auth/login"]["post"]["security"] == []
