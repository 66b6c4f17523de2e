"""The plugin server's OpenAPI document is its contract, checked by schemathesis (issue 24,
problem 14): anonymously, as a publisher and as a reviewer, every check, a fixed seed.

A published version (review on, so the queue has one) gives the runs something to find.
The panel's runs are in tests/host/test_api_contract.py, whose helpers these reuse.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from contract_support import CHECKS, run_schemathesis
from remote_helpers import LiveServer, Remote, start_remote
from support import CHATBOT, pack_into

# A plugin server on loopback (uvicorn in a thread), and schemathesis runs of 10-20 s each.
pytestmark = [pytest.mark.server, pytest.mark.slow]

CONFIG = (
    "[checks]\n"
    + "".join(f"{check}.enabled = true\n" for check in CHECKS)
    + """
# A publish is refused unless the bytes are a valid, signed plugin zip, which JSON Schema
# cannot say ("format: binary", "application/zip"): schema-valid random bytes are a 422.
[[operations]]
include-path = "/api/v1/plugins"
checks.positive_data_acceptance.enabled = false
"""
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Remote, str]]:
    tmp = tmp_path_factory.mktemp("server-contract")
    live, remote = start_remote(tmp, review="required")
    try:
        remote.publish(pack_into(CHATBOT, tmp / "zips"))
        reviewer = remote.storage.create_token("rita", role="reviewer")
        yield remote, reviewer
    finally:
        LiveServer.__exit__(live)


@pytest.mark.parametrize("role", ["anonymous", "publisher", "reviewer"])
def test_schemathesis_finds_nothing(server: tuple[Remote, str], role: str, tmp_path: Path) -> None:
    remote, reviewer = server
    token = {"anonymous": None, "publisher": remote.token, "reviewer": reviewer}[role]
    run = run_schemathesis(remote.url, tmp_path, token, CONFIG)
    assert run.returncode == 0, run.stdout[-20000:] + run.stderr[-2000:]


def document(remote: Remote) -> dict[str, Any]:
    return httpx.get(f"{remote.url}/openapi.json").json()


def test_publish_and_downloads_are_described(server: tuple[Remote, str]) -> None:
    """Problem 14: publish had no body and only 201; downloads were 'JSON'; no schemes."""
    remote, _ = server
    paths = document(remote)["paths"]
    publish = paths["/api/v1/plugins"]["post"]
    assert set(publish["requestBody"]["content"]) == {"multipart/form-data", "application/zip"}
    assert {"401", "403", "409", "413", "415", "422"} <= set(publish["responses"])
    assert publish["security"] == [{"publisher": []}]
    download = paths["/download/{plugin_id}/{version}"]["get"]
    assert set(download["responses"]["200"]["content"]) == {"application/zip"}
    assert paths["/api/v1/review/versions"]["get"]["security"] == [{"reviewer": []}]
    assert paths["/manifest.json"]["get"]["security"] == []
    schemes = document(remote)["components"]["securitySchemes"]
    assert schemes["publisher"]["scheme"] == "bearer" and schemes["reviewer"]["scheme"] == "bearer"


def test_every_422_is_a_list(server: tuple[Remote, str]) -> None:
    """Problem 14: every 422 of the plugin server sent ``detail`` as a string."""
    remote, _ = server
    bad_version = httpx.get(f"{remote.url}/download/ai_chatbot/01.0.0")
    assert bad_version.status_code == 422
    assert isinstance(bad_version.json()["detail"], list)
    junk = httpx.post(
        f"{remote.url}/api/v1/plugins",
        headers={"Authorization": f"Bearer {remote.token}"},
        files={"file": ("p.zip", b"not a zip", "application/zip")},
    )
    assert junk.status_code == 422, junk.text
    assert isinstance(junk.json()["detail"], list)
