"""Crash recovery and concurrency, with real processes: kill -9 mid-operation, then any command."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from plugdock.errors import LockTimeoutError
from plugdock.installer import Installer
from plugdock.instance.locking import operation_lock
from support import (
    CHATBOT,
    CHATBOT_1_0,
    CHATBOT_VERSION,
    instance_settings,
    make_plugin,
    pack_into,
    snapshot,
)


def run_cli(settings, *args: str, failpoints: str | None = None) -> subprocess.CompletedProcess:  # type: ignore[no-untyped-def]
    env = os.environ | {
        "PLUGDOCK_HOME": str(settings.home),
        "PLUGIN_LOCAL_DIR": str(settings.plugin_local_dir),
        "DATABASE_URL": settings.db_url,
    }
    env.pop("PLUGDOCK_FAILPOINTS", None)
    if failpoints:
        env["PLUGDOCK_FAILPOINTS"] = failpoints
    return subprocess.run(
        [sys.executable, "-m", "plugdock", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


# Kill points before the commit roll back; those after it finish the operation.
@pytest.mark.slow  # CLI runs in subprocesses, killed
@pytest.mark.parametrize(
    ("step", "finished"),
    [
        ("copy_code", False),
        ("migrate", False),
        ("hooks", False),
        ("record", False),
        ("registry", False),
        ("commit", False),
        ("cleanup", True),
    ],
)
def test_killed_install_is_recovered(installer: Installer, step: str, finished: bool) -> None:
    settings = installer.settings
    before = snapshot(settings, installer.engine)

    crashed = run_cli(settings, "install", "ai_chatbot", failpoints=f"install.{step}=kill")
    assert crashed.returncode == -9
    assert settings.journal_path.exists()  # the crash left its record behind

    listed = run_cli(settings, "list")  # any command settles the journal first
    assert listed.returncode == 0, listed.stderr
    assert "recovered" in listed.stderr
    after = snapshot(settings, installer.engine)
    if finished:
        assert [r.plugin_id for r in installer.installed()] == ["ai_chatbot"]
        assert after["journal"] is False and after["staging"] == []
        assert "chat_sessions" in after["tables"]
        ok = run_cli(settings, "doctor")
        assert ok.returncode == 0, ok.stderr
    else:
        assert after == before


@pytest.mark.slow  # CLI runs in subprocesses, killed
@pytest.mark.parametrize(
    ("step", "finished"),
    [
        ("move_code", False),
        ("hooks", False),
        ("migrate", False),
        ("registry", False),
        ("commit", False),
        ("cleanup", True),
    ],
)
def test_killed_uninstall_is_recovered(installer: Installer, step: str, finished: bool) -> None:
    settings = installer.settings
    clean = snapshot(settings, installer.engine)
    installer.install("ai_chatbot")
    installed = snapshot(settings, installer.engine)

    crashed = run_cli(settings, "uninstall", "ai_chatbot", failpoints=f"uninstall.{step}=kill")
    assert crashed.returncode == -9

    # Recovery alone must settle it (doctor --repair could paper over lost code).
    listed = run_cli(settings, "list")
    assert listed.returncode == 0, listed.stderr
    if installer.workspace.dialect == "mysql" and step in ("registry", "commit"):
        finished = True  # MariaDB committed the DROP TABLEs already: recovery finishes it
    assert ("finished" if finished else "rolled back") in listed.stderr
    after = snapshot(settings, installer.engine)
    if finished:
        history = ("addons", "audit", "generation")  # the install and uninstall did happen
        assert {k: v for k, v in after.items() if k not in history} == {
            k: v for k, v in clean.items() if k not in history
        }
        assert list(after["addons"]) == ["addon_registry.json"]
    else:
        assert after == installed
    assert run_cli(settings, "doctor").returncode == 0


# Killed after its staging folder exists and before the journal names it: nothing to undo,
# but the folder is left. The next command, even a read-only one, removes it under the lock.
@pytest.mark.slow  # CLI runs in subprocesses, killed
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # only files: any database
@pytest.mark.parametrize(
    "point",
    [
        "install.staging_created",  # the folder was just made
        "install.check_sql",  # the last step before the journal
        "upgrade.staging_created",
        "upgrade.check_sql",
    ],
)
@pytest.mark.parametrize("next_command", ["list", "doctor"])
def test_a_kill_before_the_journal_leaves_no_staging_folder(
    installer: Installer, point: str, next_command: str
) -> None:
    settings = installer.settings
    operation = point.split(".")[0]
    if operation == "upgrade":  # 1.0.0 installed, 1.1.0 offered
        for zip_file in settings.plugin_local_dir.glob("ai_chatbot_*.zip"):
            zip_file.unlink()
        pack_into(CHATBOT_1_0, settings.plugin_local_dir)
        installer.install("ai_chatbot")
        pack_into(CHATBOT, settings.plugin_local_dir)
    before = snapshot(settings, installer.engine)

    crashed = run_cli(settings, operation, "ai_chatbot", failpoints=f"{point}=kill")
    assert crashed.returncode == -9, crashed.stderr
    assert not settings.journal_path.exists()
    assert len(list(settings.staging_dir.iterdir())) == 1  # the debris this test is about

    first = run_cli(settings, next_command)
    assert first.returncode == 0, first.stderr
    assert "removed 1 staging folder" in first.stderr
    doctor = run_cli(settings, "doctor")
    assert doctor.returncode == 0, doctor.stderr
    assert snapshot(settings, installer.engine) == before  # staging empty again, nothing else
    assert run_cli(settings, operation, "ai_chatbot").returncode == 0


@pytest.mark.slow  # CLI runs in subprocesses
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_running_operations_staging_folder_is_not_debris(
    installer: Installer, tmp_path: Path
) -> None:
    """Only the lock's holder sweeps staging, and doctor reads it only while the lock is free."""
    from plugdock.installer.doctor import diagnose

    settings = installer.settings
    release = tmp_path / "release"
    env = os.environ | {
        "PLUGDOCK_HOME": str(settings.home),
        "PLUGIN_LOCAL_DIR": str(settings.plugin_local_dir),
        "DATABASE_URL": settings.db_url,
        "PLUGDOCK_FAILPOINTS": f"install.staging_created=wait:{release}",
    }
    running = subprocess.Popen(
        [sys.executable, "-m", "plugdock", "install", "ai_chatbot"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        reached = Path(f"{release}.reached")
        for _ in range(1500):
            if reached.exists() or running.poll() is not None:
                break
            time.sleep(0.02)
        assert reached.exists(), running.communicate()
        [folder] = settings.staging_dir.iterdir()
        impatient = Installer(settings.model_copy(update={"lock_timeout": 0.5}))
        with pytest.raises(LockTimeoutError):
            impatient.recover()  # what every locking command does first
        assert folder.is_dir()
        assert diagnose(installer) == []  # not "leftover staging folders"
    finally:
        release.touch()
        _out, err = running.communicate(timeout=120)
    assert running.returncode == 0, err
    assert [i.plugin_id for i in installer.installed()] == ["ai_chatbot"]
    assert list(settings.staging_dir.iterdir()) == []


def test_an_upload_folder_is_swept_only_once_its_process_is_gone(tmp_path: Path) -> None:
    """instance/scratch: the panel's uploads, written without the operation lock."""
    from plugdock.instance import scratch

    uploads = tmp_path / "uploads"
    killed = subprocess.run(
        [
            sys.executable,
            "-c",
            "import os, signal, sys; from pathlib import Path; "
            "from plugdock.instance.scratch import owned_folder\n"
            "with owned_folder(Path(sys.argv[1])) as folder:\n"
            "    (folder / 'package.zip').write_bytes(b'zip')\n"
            "    os.kill(os.getpid(), signal.SIGKILL)",
            str(uploads),
        ],
        check=False,
    )
    assert killed.returncode == -9
    (uploads / f"{'0' * 32}.lock").touch()  # killed between its lock file and its folder
    with scratch.owned_folder(uploads) as live:
        [dead] = scratch.dead(uploads)  # the killed process's, not this one's
        assert dead != live and (dead / "package.zip").exists()
        assert scratch.sweep(uploads) == 1
        assert sorted(p.name for p in uploads.iterdir()) == [live.name, f"{live.name}.lock"]
    assert list(uploads.iterdir()) == []


@pytest.mark.parametrize("database_url", ["postgresql", "mariadb"], indirect=True)
def test_two_instances_sharing_a_database_are_serialized(
    installer: Installer, tmp_path: Path, database_url: str
) -> None:
    """The database lock stops a second machine (its own instance folder) mid-operation."""
    other = instance_settings(tmp_path / "machine_b", database_url).model_copy(
        update={"lock_timeout": 1}
    )
    pack_into(CHATBOT, other.plugin_local_dir)
    second = Installer(other)
    try:
        with (
            operation_lock(installer.settings.lock_path, installer.engine, 30),
            pytest.raises(LockTimeoutError, match="database lock"),
        ):
            second.install("ai_chatbot")
        assert second.installed() == []
        assert second.install("ai_chatbot").version == CHATBOT_VERSION  # free again afterwards
    finally:
        second.engine.dispose()


@pytest.mark.slow  # CLI runs in subprocesses, killed
def test_concurrent_installs_are_serialized(installer: Installer, tmp_path: Path) -> None:
    settings = installer.settings
    ids = ["alpha", "bravo", "charlie"]
    for plugin_id in ids:
        pack_into(make_plugin(tmp_path / "src", plugin_id), settings.plugin_local_dir)
    env = os.environ | {
        "PLUGDOCK_HOME": str(settings.home),
        "PLUGIN_LOCAL_DIR": str(settings.plugin_local_dir),
        "DATABASE_URL": settings.db_url,
    }
    # Three different plugins plus the same one twice, all at once.
    requests = [*ids, "ai_chatbot", "ai_chatbot"]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "plugdock", "install", r],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for r in requests
    ]
    outcomes = [(p.wait(timeout=180), p.stderr.read()) for p in procs]

    codes = [code for code, _ in outcomes]
    assert codes[:3] == [0, 0, 0], outcomes
    assert sorted(codes[3:]) == [0, 1], outcomes  # one wins, the other is told it is installed
    assert any("already installed" in err for _, err in outcomes[3:])
    installed = {i.plugin_id for i in installer.installed()}
    assert installed == {*ids, "ai_chatbot"}
    doctor = run_cli(settings, "doctor")
    assert doctor.returncode == 0, doctor.stderr


@pytest.mark.parametrize("lost", ["emptied", "stale", "garbled"])
def test_a_registry_write_a_crash_lost_heals_from_the_rows(installer: Installer, lost: str) -> None:
    """addon_registry.json is written without fsync (a view of the rows): after a crash it
    may be empty or older than the database, and the next operation (here: recovery, which
    each operation and the panel's start run first) rewrites it."""
    settings = installer.settings
    installer.install("ai_chatbot")
    written = settings.registry_path.read_text()
    if lost == "emptied":
        settings.registry_path.write_text("")
    elif lost == "garbled":
        settings.registry_path.write_text("[]")
    else:
        settings.registry_path.write_text('{"format": 1, "plugins": {}}\n')
    installer.recover()
    assert settings.registry_path.read_text() == written
