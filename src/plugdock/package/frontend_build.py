"""Bundle a plugin's UI with esbuild while packing: ``addon.config.*`` → ``dist/addon.js``.

:func:`build_frontend` is the build step :func:`plugdock.package.pack.pack` runs on the
files it is about to ship. When the plugin folder has a ``frontend/addon.config.ts``
(or ``.tsx``, ``.js``, ``.json``), esbuild compiles it and everything it imports into
ONE ES module, ``frontend/dist/addon.js``, which the panel serves and the web shell
imports at runtime (the contract is in ``docs/frontend.md``):

- ``react``, ``react-dom``, ``react-dom/client`` and ``react/jsx-runtime`` stay external:
  the shell's import map provides them, so the shell and every plugin share one React;
  ``@plugdock/sdk`` (the contract, the API client, the user, notices) likewise;
- TSX/JSX compile with the automatic JSX runtime; the output is minified and
  deterministic (the same sources give the same bytes);
- a stale ``frontend/dist/`` in the source folder is replaced, never shipped.

A plugin without an ``addon.config`` is packed as it is (a prebuilt
``frontend/dist/addon.js`` is shipped unchanged). esbuild is found, in this order, at
``$PLUGDOCK_ESBUILD``, the plugin's own ``node_modules/.bin/esbuild`` (``plugdock new``
writes a ``package.json`` pinning it: ``npm install`` in the plugin folder), ``esbuild`` on
PATH, or ``web/node_modules/.bin/esbuild`` of a plugdock checkout (``make web``)::

    files = build_frontend(Path("examples/plugins/ai_chatbot"), package_files(folder))
    files["frontend/dist/addon.js"]   # a file in a temporary folder, removed at exit
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

from plugdock.errors import PackageError, ToolNotFoundError

CONFIG_NAMES = ("addon.config.ts", "addon.config.tsx", "addon.config.js", "addon.config.json")
BUNDLE = "frontend/dist/addon.js"
#: Provided by the shell's import map (web/build.mjs builds them); never bundled.
EXTERNALS = ("react", "react-dom", "react-dom/client", "react/jsx-runtime", "@plugdock/sdk")
ESBUILD_ENV = "PLUGDOCK_ESBUILD"
#: Where ``npm install`` in a plugin folder puts esbuild (its package.json pins it).
LOCAL_ESBUILD = Path("node_modules") / ".bin" / "esbuild"
#: The repository's own esbuild (``make web``), relative to this file in a source checkout.
REPO_ESBUILD = Path(__file__).resolve().parents[3] / "web" / "node_modules" / ".bin" / "esbuild"
TIMEOUT_SECONDS = 120


_IDENT = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*$")
_builds: dict[str, Path] = {}  # input digest → built bundle, for this process
_workdir: tempfile.TemporaryDirectory[str] | None = None


def find_config(files: Mapping[str, Path]) -> str | None:
    """The package path of the plugin's ``addon.config.*``, or None; two of them is an error."""
    found = [f"frontend/{name}" for name in CONFIG_NAMES if f"frontend/{name}" in files]
    if len(found) > 1:
        raise PackageError(f"frontend/ has more than one addon.config: {', '.join(found)}")
    return found[0] if found else None


def find_esbuild(folder: Path) -> Path:
    """The esbuild to bundle ``folder``'s UI with (the order is in the module doc).

    A ``$PLUGDOCK_ESBUILD`` that is not an executable is an error, never skipped: the
    author asked for that one.
    """
    configured = os.environ.get(ESBUILD_ENV)
    if configured:
        if _executable(Path(configured)):
            return Path(configured).absolute()
        raise ToolNotFoundError(
            f"esbuild not found: {ESBUILD_ENV}={configured} is not an executable"
        )
    on_path = shutil.which("esbuild")
    for candidate in (Path(folder) / LOCAL_ESBUILD, on_path, REPO_ESBUILD):
        if candidate is not None and _executable(Path(candidate)):
            return Path(candidate).absolute()  # pack runs it from frontend/
    # Advice that can be followed: `npm install` only where a package.json says what to install.
    npm = (
        f"run `npm install` in {folder} (its package.json pins esbuild), or "
        if (Path(folder) / "package.json").is_file()
        else ""
    )
    raise ToolNotFoundError(
        f"esbuild not found: {npm}put esbuild on PATH (`npm install -g esbuild`), "
        f"or set {ESBUILD_ENV} to an esbuild executable"
    )


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def build_frontend(folder: Path, files: Mapping[str, Path]) -> dict[str, Path]:
    """``files`` with the plugin's UI bundled into ``frontend/dist/addon.js`` (see the module doc).

    Returns ``files`` unchanged (as a new dict) when there is no ``addon.config``. Raises
    PackageError with esbuild's messages when the sources do not compile.
    """
    shipped = dict(files)
    config = find_config(files)
    if config is None:
        return shipped
    for name in [n for n in shipped if n.startswith("frontend/dist/")]:
        del shipped[name]  # a stale build in the source folder
    frontend = Path(folder) / "frontend"
    entry = entry_source(config, files)
    sources = {n: p for n, p in files.items() if n.startswith("frontend/") and n != BUNDLE}
    key = _digest(entry, sources)
    bundle = _builds.get(key)
    if bundle is None or not bundle.is_file():
        bundle = _run_esbuild(frontend, entry, key, folder)
        if not _has_node_modules(folder):  # its packages may change unseen
            _builds[key] = bundle
    shipped[BUNDLE] = bundle
    return shipped


def entry_source(config: str, files: Mapping[str, Path]) -> str:
    """The module esbuild starts from: re-export the config, or build it from JSON."""
    name = config.removeprefix("frontend/")
    if not name.endswith(".json"):
        return f"export {{ default }} from {json.dumps('./' + name)};\n"
    return _entry_from_json(json.loads(files[config].read_text(encoding="utf-8")), config)


def _entry_from_json(data: object, where: str) -> str:
    """An entry module for ``addon.config.json``; components are named by module path.

    ``{"nav": [...], "routes": [{"path": "/x", "component": "./pages/X"}],
    "widgets": ["./components/Bubble"]}`` — each component is the module's default export.
    """
    if not isinstance(data, dict):
        raise PackageError(f"{where}: must be a JSON object")
    imports: list[str] = []

    def component(spec: object, field: str) -> str:
        if not isinstance(spec, str) or not spec.startswith("./"):
            raise PackageError(f"{where}: {field} must be a module path starting with './'")
        name = f"C{len(imports)}"
        imports.append(f"import {name} from {json.dumps(spec)};")
        return name

    routes = []
    for i, route in enumerate(data.get("routes") or []):
        if not isinstance(route, dict):
            raise PackageError(f"{where}: routes[{i}] must be an object")
        fields = {
            k: json.dumps(v) for k, v in route.items() if k != "component" and _IDENT.fullmatch(k)
        }
        fields["component"] = component(route.get("component"), f"routes[{i}].component")
        routes.append("{" + ", ".join(f"{k}: {v}" for k, v in fields.items()) + "}")
    widgets = [component(w, f"widgets[{i}]") for i, w in enumerate(data.get("widgets") or [])]
    return (
        "\n".join(imports)
        + f"\nexport default {{ id: {json.dumps(data.get('id'))}, "
        + f"nav: {json.dumps(data.get('nav') or [])}, "
        + f"routes: [{', '.join(routes)}], widgets: [{', '.join(widgets)}] }};\n"
    )


def _digest(entry: str, sources: Mapping[str, Path]) -> str:
    digest = hashlib.sha256(entry.encode())
    for name in sorted(sources):
        digest.update(f"\0{name}\0".encode())
        digest.update(sources[name].read_bytes())
    return digest.hexdigest()


def _output_dir() -> Path:
    global _workdir
    if _workdir is None:
        _workdir = tempfile.TemporaryDirectory(prefix="plugdock-frontend-")
    return Path(_workdir.name)


def _run_esbuild(frontend: Path, entry: str, key: str, folder: Path) -> Path:
    esbuild = find_esbuild(folder)
    out = _output_dir() / f"{key}.js"
    metafile = _output_dir() / f"{key}.meta.json"
    command = [
        str(esbuild),
        "--bundle",
        "--format=esm",
        "--platform=browser",
        "--target=es2020",
        "--jsx=automatic",
        "--minify",
        "--legal-comments=none",
        "--charset=utf8",
        "--log-level=error",
        '--define:process.env.NODE_ENV="production"',
        "--sourcefile=addon-entry.ts",
        "--loader=ts",
        f"--outfile={out}",
        f"--metafile={metafile}",
        *(f"--external:{name}" for name in EXTERNALS),
    ]
    # cwd frontend/: resolves the entry's relative imports; keeps output paths relative
    result = run_tool(command, entry, frontend, folder)
    if result.returncode != 0 or not out.is_file():
        raise build_failed(result, folder)
    _check_inputs(frontend, metafile, folder)
    return out


def run_tool(
    command: list[str], stdin: str | None, cwd: Path, folder: Path
) -> subprocess.CompletedProcess[str]:
    """Run esbuild (or node) for ``folder``'s UI; one that cannot start is a PackageError."""
    try:
        return subprocess.run(
            command,
            input=stdin,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        name = Path(command[0]).name
        raise PackageError(f"{name} could not run: {exc}", source=str(folder)) from None


def build_failed(result: subprocess.CompletedProcess[str], folder: Path) -> PackageError:
    """esbuild's own messages (the first 40 lines) as the error."""
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    return PackageError(
        ["frontend build failed (esbuild):", *lines[:40]] if lines else "frontend build failed",
        source=str(folder),
    )


def _has_node_modules(folder: Path) -> bool:
    return any((place / "node_modules").exists() for place in (folder, folder / "frontend"))


def _check_inputs(frontend: Path, metafile: Path, folder: Path) -> None:
    """Refuse a bundle that pulled in files from outside frontend/ (or the plugin's node_modules/).

    esbuild follows any import path, so ``import k from "../../.ssh/id_rsa"`` in a plugin
    someone cloned would ship that file inside the package for every host to serve. The
    plugin's own ``node_modules/`` (``npm install`` next to its package.json) is allowed;
    paths are resolved, so a symlink in it that points elsewhere is still refused.
    """
    allowed = (frontend.resolve(), (Path(folder) / "node_modules").resolve())
    inputs = json.loads(metafile.read_text(encoding="utf-8")).get("inputs", {})
    outside = []
    for name in inputs:
        if name.startswith("<") or name == "addon-entry.ts":  # stdin and esbuild's own
            continue
        path = (frontend / name).resolve()
        if not any(path.is_relative_to(root) for root in allowed):
            outside.append(name)
    if outside:
        raise PackageError(
            [f"frontend imports {name}, which is outside frontend/" for name in outside],
            source=str(folder),
        )
