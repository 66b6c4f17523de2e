"""What a command imports: reads and --help load neither FastAPI, sqlglot nor cryptography.

These are what made ``plugdock --help`` and ``plugdock list`` slow (issue 12); an install
still needs them (SQL checks, signature policy, the plugin's own router).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HEAVY = ("fastapi", "sqlglot", "cryptography", "httpx", "pydantic_settings", "sqlalchemy")

# Runs one command in a fresh interpreter and prints which of HEAVY it imported.
PROBE = """
import sys
from plugdock.cli import app
try:
    app(sys.argv[1:])
except SystemExit:
    pass
print(",".join(m for m in {heavy!r} if m in sys.modules))
"""


def imported(tmp_path: Path, *args: str) -> list[str]:
    env = os.environ | {
        "PLUGDOCK_HOME": str(tmp_path / "instance"),
        "PLUGIN_LOCAL_DIR": str(tmp_path / "modules"),
    }
    env.pop("DATABASE_URL", None)
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=HEAVY), *args],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    last = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    return [m for m in last.split(",") if m in HEAVY]


def test_help_imports_nothing_heavy(tmp_path: Path) -> None:
    assert imported(tmp_path, "--help") == []


def test_list_imports_only_settings_and_the_database(tmp_path: Path) -> None:
    (tmp_path / "modules").mkdir()
    imported(tmp_path, "list")  # a fresh instance: creates the database first
    assert imported(tmp_path, "list") == ["pydantic_settings", "sqlalchemy"]


def test_the_probe_sees_an_import(tmp_path: Path) -> None:
    """The probe itself works: a command that checks a package's SQL imports sqlglot."""
    from plugdock.package.pack import pack

    folder = Path(__file__).resolve().parents[2] / "examples" / "plugins" / "ai_chatbot"
    package = pack(folder, tmp_path / "modules")
    assert "sqlglot" in imported(tmp_path, "validate", str(package), "--no-code")


def test_trust_and_doctor_load_cryptography_only_to_check_a_key() -> None:
    """Naming a server (trust), opening doctor or checking a signer binding does not load
    cryptography; reading a key does."""
    probe = (
        "import sys\n"
        "import plugdock.installer.doctor, plugdock.trust.store\n"
        "before = 'cryptography' in sys.modules\n"
        "plugdock.trust.store.check_signer\n"
        "binding = 'cryptography' in sys.modules\n"
        "import plugdock.trust.signing\n"
        "print(before, binding, 'cryptography' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "False", "True"]
