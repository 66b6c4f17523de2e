// Build the panel's web UI into the host's static folder (`make web` runs this).
//
//   node build.mjs [--outdir DIR]     default: ../src/plugdock/host/static
//
// Output:
//   index.html                 the shell page: an import map + app.js (asset URLs carry ?v=<hash>)
//   app.js, app.css            the shell (src/main.tsx), React left external
//   vendor/react.js            ESM builds of React for the import map, so the shell and every
//   vendor/react-dom.js        plugin bundle share one React instance
//   vendor/react-dom-client.js
//   vendor/jsx-runtime.js
//   frame.html, frame.js       the document and runtime of a plugin's sandboxed frame (src/frame/):
//                              the same files, from /plugins-ui/_/ (served by every host, the
//                              panel or an app embedding plugdock), not the panel's /static/
//   sdk.js                     @plugdock/sdk (src/sdk/): the plugin contract, the API client,
//                              the user and notices; in the import map, so the shell and every
//                              plugin bundle share ONE instance (one signed-in user, one toast list)
//
// React is CommonJS. An ESM re-export (`export * from "react"`) of a CommonJS module has no
// static named exports, so each vendor entry is generated here listing React's own export
// names explicitly (read from the installed package), and every `require("react")` inside
// react-dom is redirected to the import-map module instead of a second bundled copy.
import { createHash } from "node:crypto";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

import * as esbuild from "esbuild";

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);

const args = process.argv.slice(2);
const outIndex = args.indexOf("--outdir");
const outdir = path.resolve(
  outIndex >= 0 ? args[outIndex + 1] : path.join(here, "..", "src", "plugdock", "host", "static"),
);

/** Module specifier → vendor file (under /static/vendor/). */
const VENDOR = {
  react: "react.js",
  "react-dom": "react-dom.js",
  "react-dom/client": "react-dom-client.js",
  "react/jsx-runtime": "jsx-runtime.js",
};
/** What each vendor bundle may import from the others (never bundle a second copy). */
const VENDOR_EXTERNALS = {
  react: [],
  "react-dom": ["react"],
  "react-dom/client": ["react", "react-dom"],
  "react/jsx-runtime": ["react"],
};
/** The SDK's specifier and file (under /static/); the shell imports it like a plugin does. */
const SDK = { specifier: "@plugdock/sdk", file: "sdk.js", entry: path.join(here, "src", "sdk", "index.ts") };
/** The externals of the shell, and of every plugin bundle (plugdock/package/frontend_build.py). */
/** Where every host serves the frame's runtime (plugdock/host/frontend.py, RUNTIME_PREFIX). */
const FRAME_RUNTIME = "/plugins-ui/_";
export const SHARED_EXTERNALS = [...Object.keys(VENDOR), SDK.specifier];

const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

function exportNames(specifier) {
  const previous = process.env.NODE_ENV;
  process.env.NODE_ENV = "production";
  try {
    return Object.keys(require(specifier))
      .filter((name) => IDENTIFIER.test(name) && name !== "default" && name !== "__esModule")
      .sort();
  } finally {
    process.env.NODE_ENV = previous;
  }
}

/** Resolve `require("react")` etc. inside CommonJS packages to the external ESM module. */
function externalShim(externals) {
  const escaped = externals.map((e) => e.replace(/[/\\^$*+?.()|[\]{}-]/g, "\\$&"));
  const filter = new RegExp(`^(${escaped.join("|")})$`);
  return {
    name: "plugdock-external-shim",
    setup(build) {
      build.onResolve({ filter }, (args) => {
        if (args.namespace === "plugdock-shim" || args.kind !== "require-call") {
          return { path: args.path, external: true };
        }
        return { path: args.path, namespace: "plugdock-shim" };
      });
      build.onLoad({ filter: /.*/, namespace: "plugdock-shim" }, (args) => ({
        contents: `export * from ${JSON.stringify(args.path)};`,
        loader: "js",
      }));
    },
  };
}

const common = {
  bundle: true,
  format: "esm",
  platform: "browser",
  target: ["es2020"],
  minify: true,
  legalComments: "none",
  charset: "utf8",
  logLevel: "warning",
  define: { "process.env.NODE_ENV": '"production"' },
};

async function buildVendor(specifier, file) {
  const names = exportNames(specifier);
  const contents =
    `import M from ${JSON.stringify(specifier)};\n` +
    `export const { ${names.join(", ")} } = M;\n` +
    `export default M;\n`;
  await esbuild.build({
    ...common,
    stdin: { contents, resolveDir: here, sourcefile: `vendor-${file}`, loader: "js" },
    outfile: path.join(outdir, "vendor", file),
    plugins: VENDOR_EXTERNALS[specifier].length ? [externalShim(VENDOR_EXTERNALS[specifier])] : [],
  });
}

async function hashOf(file) {
  const bytes = await readFile(path.join(outdir, file));
  return createHash("sha256").update(bytes).digest("hex").slice(0, 12);
}

async function main() {
  const started = Date.now();
  await rm(outdir, { recursive: true, force: true });
  await mkdir(path.join(outdir, "vendor"), { recursive: true });
  await Promise.all(Object.entries(VENDOR).map(([spec, file]) => buildVendor(spec, file)));
  await esbuild.build({
    ...common,
    entryPoints: [SDK.entry],
    outfile: path.join(outdir, SDK.file),
    external: Object.keys(VENDOR),
  });
  await esbuild.build({
    ...common,
    entryPoints: { app: path.join(here, "src", "main.tsx") },
    outdir,
    jsx: "automatic",
    external: SHARED_EXTERNALS,
    loader: { ".svg": "dataurl" },
  });
  await esbuild.build({
    ...common,
    entryPoints: { frame: path.join(here, "src", "frame", "main.tsx") },
    outdir,
    jsx: "automatic",
    external: SHARED_EXTERNALS,
  });
  // The shell's import map names /static/ (the panel's); a frame's names the runtime path
  // every host serves (plugdock/host/frontend.py, RUNTIME_PREFIX), so frames load anywhere.
  const importMapAt = async (prefix) => {
    const imports = {};
    for (const [spec, file] of Object.entries(VENDOR)) {
      imports[spec] = `${prefix}/vendor/${file}?v=${await hashOf(path.join("vendor", file))}`;
    }
    imports[SDK.specifier] = `${prefix}/${SDK.file}?v=${await hashOf(SDK.file)}`;
    return JSON.stringify({ imports }, null, 2)
      .split("\n")
      .map((line) => `      ${line}`)
      .join("\n");
  };
  const importMap = await importMapAt("/static");
  const template = await readFile(path.join(here, "index.html"), "utf8");
  const html = template
    .replace("%IMPORT_MAP%", importMap)
    .replace("%APP_JS_HASH%", await hashOf("app.js"))
    .replace("%APP_CSS_HASH%", await hashOf("app.css"));
  await writeFile(path.join(outdir, "index.html"), html);
  const frameTemplate = await readFile(path.join(here, "frame.html"), "utf8");
  const frameHtml = frameTemplate
    .replaceAll("%RUNTIME%", FRAME_RUNTIME)
    .replace("%IMPORT_MAP%", await importMapAt(FRAME_RUNTIME))
    .replace("%FRAME_JS_HASH%", await hashOf("frame.js"))
    .replace("%APP_CSS_HASH%", await hashOf("app.css"));
  await writeFile(path.join(outdir, "frame.html"), frameHtml);
  await writeFile(path.join(outdir, ".build-stamp"), `${new Date().toISOString()}\n`);
  console.log(`web: built into ${path.relative(process.cwd(), outdir) || "."} in ${Date.now() - started} ms`);
}

await main();
