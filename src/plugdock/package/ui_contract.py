"""Do ``metadata.json``'s ``frontend`` and the plugin's ``addon.config`` say the same thing?

``frontend.routes`` (the pages the CLI, the marketplace and reviewers are told about) must
be exactly the ``path`` of each route in ``addon.config``, and ``frontend.components``
exactly the names of its route components and widgets. Otherwise the CLI prints pages that
do not exist and a reviewer approves a UI that is not the one shipped. ``pack`` (and so
``validate``) refuses a disagreement and names each difference::

    problems = compare(meta.frontend, read_ui(folder, files))
    # ["metadata.json frontend.routes lists /notes, but addon.config has no route /notes"]

The config is code (TypeScript), so it is read by running it: esbuild bundles it for Node
with React replaced by an inert stand-in and names kept, and ``node`` prints its routes and
component names. Only the module's top level runs (no component is rendered).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from plugdock.errors import PackageError, ToolNotFoundError
from plugdock.package import frontend_build
from plugdock.package.metadata import FrontendSpec

# Runs the probe bundle (CommonJS) with every shared external (React) answered by a Proxy
# that accepts any property access and call, then prints what the default export declares.
_RUNNER = r"""
const Module = require("module");
const externals = new Set(JSON.parse(process.argv[2]));
const inert = new Proxy(function () {}, {
  get: (target, key) =>
    key === "__esModule" ? false : key === Symbol.toPrimitive ? () => "" : inert,
  apply: () => inert,
  construct: () => inert,
});
// The SDK's defineAddon(config) returns its config: keep that, so the config is seen.
const sdk = new Proxy({ defineAddon: (config) => config }, {
  get: (target, key) => (key in target ? target[key] : inert),
});
const load = Module._load;
Module._load = function (request, ...rest) {
  if (!externals.has(request)) return load.call(this, request, ...rest);
  return request === "@plugdock/sdk" ? sdk : inert;
};
const loaded = require(process.argv[1]);
const config = (loaded && loaded.default) || {};
const name = (c) => {
  for (const candidate of [c, c && c.type, c && c.render]) {
    if (candidate && typeof candidate.displayName === "string") return candidate.displayName;
    const named = typeof candidate === "function" && typeof candidate.name === "string";
    // "default"/"component": what JS names an anonymous default export or route property.
    if (named && !["", "default", "component"].includes(candidate.name)) return candidate.name;
  }
  return "";
};
const list = (value) => (Array.isArray(value) ? value : []);
process.stdout.write(JSON.stringify({
  routes: list(config.routes).map((r) => ({
    path: String(r && r.path),
    component: name(r && r.component),
  })),
  widgets: list(config.widgets).map(name),
}));
"""


@dataclass(frozen=True)
class DeclaredUI:
    """What an ``addon.config`` declares: page paths and component names, in its order."""

    routes: tuple[str, ...]
    components: tuple[str, ...]
    unnamed: int = 0  # components without a name (e.g. an anonymous arrow function)


#: Runs node's command line (its script in the given folder) somewhere else, e.g. confined:
#: ``plugdock validate`` never runs a package's addon.config on the host.
NodeRunner = Callable[[list[str], Path], "subprocess.CompletedProcess[str]"]


def read_ui(
    folder: Path, files: Mapping[str, Path], run_node: NodeRunner | None = None
) -> DeclaredUI | None:
    """Run ``folder``'s ``addon.config`` and return what it declares; None without one.

    Needs esbuild (found as for the build) and ``node``; raises PackageError when either
    is missing or the config cannot run outside a browser. esbuild only bundles it; the
    config's code runs in ``node``, through ``run_node`` when given (else on this host).
    """
    config = frontend_build.find_config(files)
    if config is None:
        return None
    esbuild = frontend_build.find_esbuild(folder)
    node = shutil.which("node")
    if node is None:
        raise ToolNotFoundError(
            "node not found: comparing addon.config with metadata.json runs the config "
            "with Node.js (it comes with npm); put node on PATH",
            source=str(folder),
        )
    entry = frontend_build.entry_source(config, files)
    with tempfile.TemporaryDirectory(prefix="plugdock-ui-") as scratch:
        probe = Path(scratch) / "probe.cjs"
        command = [
            str(esbuild),
            "--bundle",
            "--format=cjs",
            "--platform=node",
            "--keep-names",  # component names survive for the comparison
            "--jsx=automatic",
            "--log-level=error",
            "--sourcefile=addon-entry.ts",
            "--loader=ts",
            f"--outfile={probe}",
            *(f"--external:{name}" for name in frontend_build.EXTERNALS),
        ]
        built = frontend_build.run_tool(command, entry, Path(folder) / "frontend", folder)
        if built.returncode != 0:
            raise frontend_build.build_failed(built, folder)
        argv = [node, "-e", _RUNNER, str(probe), json.dumps(frontend_build.EXTERNALS)]
        if run_node is not None:
            ran = run_node(argv, Path(scratch))
        else:
            ran = frontend_build.run_tool(argv, None, Path(scratch), folder)
    if ran.returncode != 0:
        lines = ran.stderr.strip().splitlines() or ["no output"]
        last = next((line for line in lines if "Error" in line), lines[-1])
        raise PackageError(
            f"{config} could not be run to compare it with metadata.json (its top level "
            f"must not need a browser): {last}",
            source=str(folder),
        )
    data = json.loads(ran.stdout)
    names = [r["component"] for r in data["routes"]] + list(data["widgets"])
    return DeclaredUI(
        routes=tuple(r["path"] for r in data["routes"]),
        components=tuple(dict.fromkeys(n for n in names if n)),
        unnamed=sum(1 for n in names if not n),
    )


def compare(declared: FrontendSpec, ui: DeclaredUI | None) -> list[str]:
    """Each difference between ``metadata.json``'s ``frontend`` and the config, in words."""
    if ui is None:
        return []  # no addon.config: a prebuilt bundle, nothing to compare with
    problems = []
    for field, meta_items, ui_items, what in (
        ("routes", declared.routes, ui.routes, "route"),
        ("components", declared.components, ui.components, "component"),
    ):
        for item in meta_items:
            if item not in ui_items:
                problems.append(
                    f"metadata.json frontend.{field} lists {item}, but addon.config has no "
                    f"{what} {item}"
                )
        for item in ui_items:
            if item not in meta_items:
                problems.append(
                    f"addon.config has the {what} {item}, which metadata.json "
                    f"frontend.{field} does not list"
                )
    if ui.unnamed:
        problems.append(
            f"addon.config has {ui.unnamed} component(s) without a name (an anonymous "
            "function): name them so metadata.json frontend.components can list them"
        )
    return problems
