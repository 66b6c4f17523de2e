"""``@plugdock/sdk``'s shipped declarations and the UI's generated API types stay in step.

- ``plugdock-sdk.d.ts`` (copied into new plugins by ``plugdock new``) is regenerated from
  ``web/src/sdk/`` by ``web/sdk-types.mjs`` and must equal the committed file;
- that file alone (no path mapping, no panel sources) type-checks the chatbot's UI, and
  rejects a misuse of the SDK;
- ``packages/react/src/generated/openapi.ts`` (the shell imports it too) is regenerated from
  the app factory's OpenAPI document by ``scripts/openapi_types.py`` and must equal the
  committed file.

They need ``web/node_modules`` (``make web``); without it they fail, they never skip.
"""

from __future__ import annotations

import difflib
import importlib.util
import json
import subprocess
from pathlib import Path

import pytest

from support import CHATBOT, REPO

WEB = REPO / "web"
NODE_BIN = WEB / "node_modules" / ".bin"
SDK_DTS = REPO / "src" / "plugdock" / "scaffold_template" / "frontend" / "plugdock-sdk.d.ts"
OPENAPI_TS = REPO / "packages" / "react" / "src" / "generated" / "openapi.ts"


def _diff(committed: Path, fresh: str) -> str:
    lines = difflib.unified_diff(
        committed.read_text(encoding="utf-8").splitlines(),
        fresh.splitlines(),
        str(committed.relative_to(REPO)),
        "regenerated",
        lineterm="",
    )
    return "\n".join(list(lines)[:60])


def _tsc(tmp_path: Path, include: list[Path]) -> subprocess.CompletedProcess[str]:
    """Type-check ``include`` the way a plugin author's project would: React's types only."""
    types = WEB / "node_modules" / "@types"
    config = {
        "compilerOptions": {
            "target": "ES2022",
            "module": "ESNext",
            "moduleResolution": "Bundler",
            "jsx": "react-jsx",
            "lib": ["ES2022", "DOM", "DOM.Iterable"],
            "strict": True,
            "noEmit": True,
            "skipLibCheck": True,
            "types": [],
            "paths": {
                "react": [str(types / "react" / "index.d.ts")],
                "react/*": [str(types / "react" / "*")],
            },
        },
        "include": [str(p) for p in include],
    }
    project = tmp_path / "tsconfig.json"
    project.write_text(json.dumps(config))
    return subprocess.run(
        [str(NODE_BIN / "tsc"), "-p", str(project)],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow  # node: tsc or a generator
def test_committed_sdk_declarations_match_the_sources(tmp_path: Path) -> None:
    fresh = tmp_path / "plugdock-sdk.d.ts"
    subprocess.run(
        ["node", str(WEB / "sdk-types.mjs"), "--out", str(fresh)],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    text = fresh.read_text(encoding="utf-8")
    assert text == SDK_DTS.read_text(encoding="utf-8"), (
        "plugdock-sdk.d.ts is stale: run `node web/sdk-types.mjs`\n" + _diff(SDK_DTS, text)
    )
    # The shell's own hooks are not part of the plugin API.
    assert 'declare module "@plugdock/sdk"' in text
    for internal in ("clientHooks", "setCurrentUser", "setSignedIn"):
        assert internal not in text
    for public in ("request<", "class ApiError", "useUser", "notify", "interface AddonConfig"):
        assert public in text


@pytest.mark.slow  # node: tsc or a generator
def test_declarations_alone_type_check_a_plugin_and_catch_misuse(tmp_path: Path) -> None:
    good = _tsc(tmp_path, [CHATBOT / "frontend", SDK_DTS])
    assert good.returncode == 0, good.stdout + good.stderr

    misuse = tmp_path / "misuse.ts"
    misuse.write_text(
        'import { request, notify, type AddonConfig } from "@plugdock/sdk";\n'
        'void request("FETCH", "/api/v1/x");\n'
        "notify(42);\n"
        'export const config: AddonConfig = { routes: [{ path: "/x" }] };\n'
    )
    bad = _tsc(tmp_path, [misuse, SDK_DTS])
    assert bad.returncode != 0
    assert "'\"FETCH\"' is not assignable to parameter of type 'Method'" in bad.stdout
    assert "'number' is not assignable to parameter of type 'string'" in bad.stdout
    assert "component" in bad.stdout  # a route without its component


@pytest.mark.slow  # node: tsc or a generator
def test_a_new_plugins_ui_type_checks_with_the_declarations_it_ships(tmp_path: Path) -> None:
    """plugdock new copies the SDK's .d.ts into the plugin, and its page uses the SDK."""
    from plugdock.package.scaffold import scaffold

    folder = scaffold("kit_check", tmp_path)
    shipped = folder / "frontend" / "plugdock-sdk.d.ts"
    assert shipped.read_text(encoding="utf-8") == SDK_DTS.read_text(encoding="utf-8")
    page = (folder / "frontend" / "pages" / "KitCheckPage.tsx").read_text(encoding="utf-8")
    assert 'from "@plugdock/sdk"' in page and "fetch(" not in page
    checked = _tsc(tmp_path, [folder / "frontend"])
    assert checked.returncode == 0, checked.stdout + checked.stderr


def _openapi_script():
    spec = importlib.util.spec_from_file_location(
        "openapi_types", REPO / "scripts" / "openapi_types.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow  # node: tsc or a generator
def test_committed_openapi_types_match_the_live_document() -> None:
    script = _openapi_script()
    fresh = script.generate()
    assert fresh == OPENAPI_TS.read_text(encoding="utf-8"), (
        f"{OPENAPI_TS} is stale: run `.venv/bin/python scripts/openapi_types.py`\n"
        + _diff(OPENAPI_TS, fresh)
    )


def test_ui_response_types_come_from_the_generated_schema() -> None:
    """The UI names its responses from the schema, so a new field reaches it: e.g. the
    install's package digest and signer, which the hand-written type once lacked."""
    generated = OPENAPI_TS.read_text(encoding="utf-8")
    install = generated.split("        InstallResponse: {", 1)[1].split("\n        };", 1)[0]
    assert "package_sha256: string;" in install and "signer: string | null;" in install
    # The marketplace's client is @plugdock/react's (the shell's screens come from there).
    client_ts = (REPO / "packages" / "react" / "src" / "client.ts").read_text(encoding="utf-8")
    assert 'export type InstallResponse = Schemas["InstallResponse"];' in client_ts
    assert "export interface InstallResponse" not in client_ts
