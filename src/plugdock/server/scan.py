"""Static security scan of a package's Python code with bandit, for the review report.

Bandit runs in a subprocess (so a pathological file cannot hang the server: it is killed
after ``timeout`` seconds) over a scratch copy holding only the package's ``.py`` files.
The copy matters: bandit obeys a ``.bandit`` file it finds in the scanned folder and
``# nosec`` comments, and both would let a package switch the scan off; here no config
file can come along and ``--ignore-nosec`` is always on. Nothing is executed: bandit
reads the syntax tree.

Each finding also says whether its line runs *at import* (module or class level, outside
any function): such code runs the moment a host loads the plugin, before any request.

Files the scan cannot read are findings too, so a package with code the reviewer cannot see
never shows "no findings": compiled or native code anywhere (``__pycache__/``, ``.pyc``,
``.so``, ...: HIGH, though the package reader refuses it before a report is made) and any
other file outside ``frontend/`` that is not UTF-8 text (MEDIUM: data a plugin could unpickle,
a library it could load with ctypes). Frontend assets (images, fonts) may be binary.

>>> scan_python(Path("unpacked/backend"))  # doctest: +SKIP
{'status': 'ok', 'tool': 'bandit 1.9.4', 'findings': [...], 'errors': [], ...}
"""

from __future__ import annotations

import ast
import codecs
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from plugdock.package.archive import compiled_code_problem

MAX_FINDINGS = 300
SEVERITIES = ("HIGH", "MEDIUM", "LOW", "UNDEFINED")


def _bandit_version() -> str:
    # From the distribution's metadata: importing bandit here would load its plugins.
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"bandit {version('bandit')}"
    except PackageNotFoundError:  # pragma: no cover - a declared dependency
        return "bandit (not installed)"


def scanner_missing() -> str | None:
    """Why the review scan cannot run here, or None: bandit comes with ``plugdock[server]``."""
    from importlib.util import find_spec

    if find_spec("bandit") is None:
        return "the review scan needs bandit: pip install 'plugdock[server]'"
    return None


def scan_python(folder: Path, *, timeout: float = 60.0) -> dict[str, Any]:
    """Scan every ``.py`` file under ``folder``; a report dict (never raises for the code)."""
    sources = sorted(p for p in folder.rglob("*.py") if p.is_file() and not p.is_symlink())
    unreadable = _unreadable_files(folder)
    result: dict[str, Any] = {
        "tool": _bandit_version(),
        "files": len(sources),
        "findings": unreadable,
        "errors": [],
        "counts": dict.fromkeys(SEVERITIES, 0),
        "truncated": False,
    }
    for finding in unreadable:
        result["counts"][finding["severity"]] += 1
    if not sources:
        return {**result, "status": "ok"}
    with tempfile.TemporaryDirectory(prefix="plugdock-scan-") as scratch:
        root = Path(scratch) / "code"
        for source in sources:
            copy = root / source.relative_to(folder)
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, copy)
        command = [
            sys.executable,
            "-m",
            "bandit",
            "-r",
            "-f",
            "json",
            "-q",
            "--ignore-nosec",
            "--exit-zero",
            "code",
        ]
        try:
            done = subprocess.run(  # a fixed argv, no shell
                command,
                cwd=scratch,
                capture_output=True,
                timeout=timeout,
                check=False,
                env={"PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"},
            )
        except subprocess.TimeoutExpired:
            return {**result, "status": "timeout", "detail": f"the scan took over {timeout:g} s"}
        try:
            data = json.loads(done.stdout)
        except ValueError:
            tail = done.stderr.decode("utf-8", "replace").strip().splitlines()[-3:]
            return {**result, "status": "failed", "detail": " ".join(tail)[:500]}
        at_import = {p.relative_to(folder).as_posix(): _import_time_lines(p) for p in sources}
        findings: list[dict[str, Any]] = list(unreadable)
        for item in data.get("results", []):
            name = _relative(str(item.get("filename", "")))
            line = int(item.get("line_number") or 0)
            lines = at_import.get(name)
            severity = str(item.get("issue_severity", "UNDEFINED")).upper()
            if severity not in result["counts"]:
                severity = "UNDEFINED"
            result["counts"][severity] += 1
            findings.append(
                {
                    "test_id": str(item.get("test_id", "")),
                    "test_name": str(item.get("test_name", "")),
                    "severity": severity,
                    "confidence": str(item.get("issue_confidence", "")).upper(),
                    "file": name,
                    "line": line,
                    "text": str(item.get("issue_text", ""))[:500],
                    "code": str(item.get("code", ""))[:1000],
                    "at_import": None if lines is None else line not in lines,
                }
            )
        order = {s: i for i, s in enumerate(SEVERITIES)}
        findings.sort(
            key=lambda f: (order[f["severity"]], not f["at_import"], f["file"], f["line"])
        )
        result["truncated"] = len(findings) > MAX_FINDINGS
        result["findings"] = findings[:MAX_FINDINGS]
        result["errors"] = [
            {
                "file": _relative(str(e.get("filename", ""))),
                "reason": str(e.get("reason", ""))[:300],
            }
            for e in data.get("errors", [])[:50]
        ]
        return {**result, "status": "ok"}


def _unreadable_files(folder: Path) -> list[dict[str, Any]]:
    """Findings for the files bandit cannot read: compiled or native code, binary files."""
    findings = []
    for path in sorted(folder.rglob("*")):
        if path.is_symlink() or not path.is_file() or path.suffix == ".py":
            continue
        name = path.relative_to(folder).as_posix()
        problem = compiled_code_problem(name)
        if problem is not None:  # Python would run it, at import
            test_id, test, severity, at_import = "PD001", "compiled_code", "HIGH", True
            text = problem
        elif not name.startswith("frontend/") and not _is_text(path):
            test_id, test, severity, at_import = "PD002", "binary_file", "MEDIUM", None
            text = "is not UTF-8 text: neither the scan nor a reviewer can read it"
        else:
            continue
        findings.append(
            {
                "test_id": test_id,
                "test_name": test,
                "severity": severity,
                "confidence": "HIGH",
                "file": name,
                "line": 0,
                "text": text,
                "code": "",
                "at_import": at_import,
            }
        )
    return findings


def _is_text(path: Path) -> bool:
    """Whether a file is UTF-8 text without NUL bytes (read in chunks: it may be large)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        with path.open("rb") as file:
            while chunk := file.read(1024 * 1024):
                if b"\0" in chunk:
                    return False
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
    except (OSError, UnicodeDecodeError):
        return False
    return True


def _relative(name: str) -> str:
    """bandit's ``code/backend/x.py`` as the package's ``backend/x.py``."""
    return name[len("code/") :] if name.startswith("code/") else name


def _import_time_lines(path: Path) -> set[int] | None:
    """The lines *inside* function bodies (which do not run at import); None if unparsable.

    Named ``_import_time_lines`` for what it serves: a finding whose line is not in this set
    runs at import.
    """
    try:
        tree = ast.parse(path.read_bytes())
    except (SyntaxError, ValueError):
        return None
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            # Decorators and default values run at import; the body does not.
            body = node.body if isinstance(node.body, list) else [node.body]
            start = body[0].lineno
            end = max(getattr(n, "end_lineno", None) or n.lineno for n in body)
            inside.update(range(start, end + 1))
    return inside


__all__ = ["scan_python", "scanner_missing"]
