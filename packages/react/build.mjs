// Build @plugdock/react into dist/ (`npm run build`; `npm pack` runs it too):
//
//   dist/index.js        one ES module (esbuild), React and react-dom left to the host
//   dist/types/*.d.ts    the declarations (tsc)
//   dist/styles.css      the stylesheet (`import "@plugdock/react/styles.css"`)
import { execFileSync } from "node:child_process";
import { copyFile, mkdir, rm } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";

import * as esbuild from "esbuild";

const here = path.dirname(fileURLToPath(import.meta.url));
const dist = path.join(here, "dist");

await rm(dist, { recursive: true, force: true });
await mkdir(dist, { recursive: true });
await esbuild.build({
  entryPoints: [path.join(here, "src", "index.ts")],
  outfile: path.join(dist, "index.js"),
  bundle: true,
  format: "esm",
  platform: "browser",
  target: ["es2020"],
  jsx: "automatic",
  // The host's React: never a second copy (react/jsx-runtime, react-dom/client included).
  external: ["react", "react/*", "react-dom", "react-dom/*"],
  legalComments: "none",
  // Hooks and components only: a client module where React Server Components draw the line.
  banner: { js: '"use client";' },
  logLevel: "warning",
});
await copyFile(path.join(here, "src", "styles.css"), path.join(dist, "styles.css"));
execFileSync(process.execPath, [path.join(here, "node_modules", "typescript", "bin", "tsc"), "-p", here], {
  stdio: "inherit",
});
console.log("@plugdock/react: built into dist/");
