"""``plugdock pack`` bundling a plugin's UI with esbuild (plugdock.package.frontend_build)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from plugdock.errors import PackageError
from plugdock.package import frontend_build
from plugdock.package.pack import pack
from support import CHATBOT, make_plugin

BUNDLE = "frontend/dist/addon.js"


def bundle_of(package: Path) -> str:
    with zipfile.ZipFile(package) as archive:
        return archive.read(BUNDLE).decode()


def test_chatbot_bundle_is_one_deterministic_module_with_react_external(tmp_path: Path) -> None:
    first = pack(CHATBOT, tmp_path / "a")
    frontend_build._builds.clear()  # build again for real, not from this process's memo
    second = pack(CHATBOT, tmp_path / "b")
    assert first.read_bytes() == second.read_bytes()
    code = bundle_of(first)
    assert 'from"react"' in code and 'from"react/jsx-runtime"' in code
    assert "__CLIENT_INTERNALS" not in code  # React itself is not bundled: one React
    with zipfile.ZipFile(first) as archive:
        names = archive.namelist()
    assert "frontend/addon.config.ts" in names  # the sources ship too, for review
    assert [n for n in names if n.startswith("frontend/dist/")] == [BUNDLE]


def test_plugin_without_addon_config_is_packed_as_before(tmp_path: Path) -> None:
    folder = make_plugin(tmp_path, "plain")
    with zipfile.ZipFile(pack(folder, tmp_path / "out")) as archive:
        assert not [n for n in archive.namelist() if n.startswith("frontend/dist/")]


def test_stale_dist_is_replaced_and_json_config_builds(tmp_path: Path) -> None:
    config = {
        "id": "jsonui",
        "nav": [{"label": "Notes", "path": "/notes", "adminOnly": True}],
        "routes": [{"path": "/notes", "component": "./pages/Notes", "title": "Notes"}],
        "widgets": ["./components/Hello"],
    }
    folder = make_plugin(
        tmp_path,
        "jsonui",
        metadata={"frontend": {"routes": ["/notes"], "components": ["Notes", "Hello"]}},
        extra_files={
            "frontend/addon.config.json": json.dumps(config),
            "frontend/pages/Notes.tsx": "export default function Notes() { return <h1>N</h1>; }\n",
            "frontend/components/Hello.tsx": "export default function Hello() { return null; }\n",
            "frontend/dist/addon.js": "stale();\n",
        },
    )
    code = bundle_of(pack(folder, tmp_path / "out"))
    assert "stale()" not in code
    assert '"/notes"' in code and "adminOnly" in code and "<h1>" not in code


def test_compile_error_is_a_package_error(tmp_path: Path) -> None:
    folder = make_plugin(
        tmp_path,
        "badui",
        extra_files={"frontend/addon.config.ts": "import Missing from './nope';\nexport default {"},
    )
    with pytest.raises(PackageError, match="frontend build failed"):
        pack(folder, tmp_path / "out")
    assert not list((tmp_path / "out").glob("*.zip"))


def test_missing_esbuild_says_how_to_get_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(frontend_build.ESBUILD_ENV, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    monkeypatch.setattr(frontend_build, "REPO_ESBUILD", tmp_path / "no-checkout" / "esbuild")
    folder = make_plugin(
        tmp_path, "needsbuild", extra_files={"frontend/addon.config.ts": "export default {};\n"}
    )
    with pytest.raises(PackageError) as caught:
        pack(folder, tmp_path / "out")
    # No package.json (the repository's examples have none): no advice to run npm install.
    assert caught.value.problems == [
        "esbuild not found: put esbuild on PATH (`npm install -g esbuild`), "
        "or set PLUGDOCK_ESBUILD to an esbuild executable"
    ]
    (folder / "package.json").write_text("{}")
    with pytest.raises(PackageError) as caught:
        pack(folder, tmp_path / "out")
    assert caught.value.problems == [
        f"esbuild not found: run `npm install` in {folder} (its package.json pins esbuild), "
        "or put esbuild on PATH (`npm install -g esbuild`), or set PLUGDOCK_ESBUILD to an "
        "esbuild executable"
    ]


def test_a_configured_esbuild_that_is_not_there_is_an_error_not_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(frontend_build.ESBUILD_ENV, str(tmp_path / "no-esbuild"))
    with pytest.raises(PackageError, match=r"PLUGDOCK_ESBUILD=.*no-esbuild is not an executable"):
        frontend_build.find_esbuild(tmp_path)


def _executable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)
    return path


def test_esbuild_search_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """$PLUGDOCK_ESBUILD, the plugin's node_modules, PATH, then a plugdock checkout's web/."""
    folder = tmp_path / "plugin"
    configured = _executable(tmp_path / "configured" / "esbuild")
    local = _executable(folder / "node_modules" / ".bin" / "esbuild")
    on_path = _executable(tmp_path / "bin" / "esbuild")
    checkout = _executable(tmp_path / "checkout" / "esbuild")
    (tmp_path / "bin" / "not-esbuild").mkdir()
    monkeypatch.setattr(frontend_build, "REPO_ESBUILD", checkout)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    monkeypatch.setenv(frontend_build.ESBUILD_ENV, str(configured))
    assert frontend_build.find_esbuild(folder) == configured
    monkeypatch.delenv(frontend_build.ESBUILD_ENV)
    assert frontend_build.find_esbuild(folder) == local
    local.chmod(0o644)  # not executable: skipped
    assert frontend_build.find_esbuild(folder) == on_path
    on_path.unlink()
    assert frontend_build.find_esbuild(folder) == checkout
    # A relative folder still gives a path that works from frontend/, where esbuild runs.
    monkeypatch.chdir(tmp_path)
    local.chmod(0o755)
    assert frontend_build.find_esbuild(Path("plugin")) == local


def test_the_plugins_own_node_modules_may_be_bundled_but_not_a_link_out_of_it(
    tmp_path: Path,
) -> None:
    """``npm install`` next to package.json puts packages in <plugin>/node_modules/."""
    (tmp_path / "secret.js").write_text("export default 'TOPSECRET-456';\n")
    folder = make_plugin(
        tmp_path / "src",
        "withdeps",
        extra_files={
            "node_modules/tiny-lib/package.json": '{"name": "tiny-lib", "main": "index.js"}',
            "node_modules/tiny-lib/index.js": "export const shout = (s) => s + '!TINY-LIB';\n",
            "frontend/addon.config.ts": 'import { shout } from "tiny-lib";\n'
            "export default { id: 'withdeps', nav: [], routes: [], widgets: [], x: shout('a') };\n",
        },
    )
    assert "!TINY-LIB" in bundle_of(pack(folder, tmp_path / "out"))
    link = folder / "node_modules" / "evil"
    link.mkdir()
    (link / "package.json").write_text('{"name": "evil", "main": "index.js"}')
    (link / "index.js").symlink_to(tmp_path / "secret.js")
    (folder / "frontend" / "addon.config.ts").write_text(
        'import s from "evil";\nexport default { id: "withdeps", routes: [], s };\n'
    )
    with pytest.raises(PackageError, match="outside frontend/"):
        pack(folder, tmp_path / "out2")


def test_two_configs_are_refused(tmp_path: Path) -> None:
    folder = make_plugin(
        tmp_path,
        "twoconf",
        extra_files={
            "frontend/addon.config.ts": "export default {};\n",
            "frontend/addon.config.json": "{}",
        },
    )
    with pytest.raises(PackageError, match=r"more than one addon\.config"):
        pack(folder, tmp_path / "out")


def test_files_outside_frontend_cannot_be_bundled(tmp_path: Path) -> None:
    """A cloned plugin must not ship the packer's files: esbuild follows any import path."""
    (tmp_path / "secret.txt").write_text("TOPSECRET-123\n")
    folder = make_plugin(
        tmp_path / "src",
        "leaky",
        extra_files={
            "frontend/addon.config.ts": 'import secret from "../../../secret.txt";\n'
            "export default { id: 'leaky', nav: [], routes: [], widgets: [], secret };\n"
        },
    )
    assert (folder / "frontend" / "../../../secret.txt").resolve() == tmp_path / "secret.txt"
    with pytest.raises(PackageError, match="outside frontend/"):
        pack(folder, tmp_path / "out")
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


# ------------------------------------------- metadata.json frontend vs addon.config


def ui_plugin(tmp_path: Path, name: str, frontend: dict[str, object], config: str) -> Path:
    return make_plugin(
        tmp_path,
        name,
        metadata={"frontend": frontend},
        extra_files={
            "frontend/addon.config.tsx": config,
            "frontend/pages/Board.tsx": "export default function Board() { return <h1>B</h1>; }\n",
        },
    )


def test_config_through_the_sdk_with_widgets_agrees(tmp_path: Path) -> None:
    """defineAddon from @plugdock/sdk hands its config through; widgets are components too."""
    config = (
        'import { defineAddon } from "@plugdock/sdk";\n'
        'import { useState } from "react";\n'
        'import Board from "./pages/Board";\n'
        "const Bubble = () => { useState(0); return null; };\n"
        "export default defineAddon({\n"
        '  routes: [{ path: "/board", component: Board },\n'
        '    { path: "/board/:id", component: Board }],\n'
        "  widgets: [Bubble],\n"
        "});\n"
    )
    frontend = {"routes": ["/board", "/board/:id"], "components": ["Board", "Bubble"]}
    assert pack(ui_plugin(tmp_path, "board", frontend, config), tmp_path / "out").is_file()
    folder = ui_plugin(tmp_path / "b", "board", frontend | {"components": ["Board"]}, config)
    with pytest.raises(PackageError) as caught:
        pack(folder, tmp_path / "out2")
    assert caught.value.problems == [
        "addon.config has the component Bubble, which metadata.json frontend.components "
        "does not list"
    ]


def test_an_anonymous_component_cannot_be_listed(tmp_path: Path) -> None:
    config = (
        'export default { routes: [{ path: "/anon", component: function () { return null; } }] };\n'
    )
    folder = ui_plugin(tmp_path, "anon", {"routes": ["/anon"]}, config)
    with pytest.raises(PackageError, match=r"1 component\(s\) without a name"):
        pack(folder, tmp_path / "out")


def test_a_config_that_needs_a_browser_at_its_top_level_is_named(tmp_path: Path) -> None:
    config = (
        'const saved = window.localStorage.getItem("x");\nexport default { routes: [], saved };\n'
    )
    folder = ui_plugin(tmp_path, "browsery", {}, config)
    with pytest.raises(PackageError, match=r"could not be run .*window is not defined"):
        pack(folder, tmp_path / "out")
