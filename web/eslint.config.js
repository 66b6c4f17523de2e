// ESLint for the web UI: `npm run lint` (part of `make lint`; docs/architecture.md).
//
// typescript-eslint's recommended rules with type information (the same tsconfig.json as
// `npm run typecheck`), React's rules of hooks, and the boundary between the shell and the
// plugin SDK:
//
//   src/sdk/      @plugdock/sdk, what plugin UIs import; it never imports the shell.
//   src/api.ts    the shell's one API client; the rest of the shell calls the panel through it,
//                 never with fetch() or the SDK's client (that one is for plugin UIs).
import js from "@eslint/js";
import { defineConfig, globalIgnores } from "eslint/config";
import reactHooks from "eslint-plugin-react-hooks";
import globals from "globals";
import tseslint from "typescript-eslint";

/** The SDK by a path instead of its name: a second copy of it, bundled into the shell. */
const SDK_BY_PATH = {
  regex: "^\\.\\.?/(.*/)?sdk(/|$)",
  message: 'Import the SDK as "@plugdock/sdk": a path would bundle a second copy into the shell.',
};
/** What the SDK exports for plugins' own API calls: not for the shell's. */
const SDK_CLIENT = {
  name: "@plugdock/sdk",
  importNames: ["api", "request", "ApiError", "describeDetail", "errorMessage", "csrfToken"],
  message: "The shell calls the panel's API through src/api.ts; the SDK's client is for plugin UIs.",
};
const THROUGH_API_TS = "The shell calls the panel's API through src/api.ts.";

export default defineConfig([
  // Generated (scripts/openapi_types.py). The build's output is outside web/ (build.mjs writes
  // to src/plugdock/host/static/), and node_modules/ is ignored anyway.
  globalIgnores(["src/generated/"]),

  // The build scripts and this file: plain ES modules run by Node.
  {
    files: ["**/*.{js,mjs}"],
    extends: [js.configs.recommended],
    languageOptions: { globals: globals.node },
  },

  // The UI, with the types tsc sees.
  {
    files: ["src/**/*.{ts,tsx}"],
    extends: [js.configs.recommended, tseslint.configs.recommendedTypeChecked, reactHooks.configs.flat.recommended],
    languageOptions: {
      globals: globals.browser,
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      // A warning in the preset: an error here, so a missing dependency fails `make lint`.
      "react-hooks/exhaustive-deps": "error",
    },
  },

  // The plugin SDK: self-contained (it is built into its own module, /static/sdk.js).
  {
    files: ["src/sdk/**"],
    rules: {
      "no-restricted-imports": [
        "error",
        { patterns: [{ group: ["../*"], message: "src/sdk/ is what plugin UIs import: it must not import the shell." }] },
      ],
    },
  },

  // The shell: the SDK by its name only (one shared instance, from the import map) ...
  {
    files: ["src/**/*.{ts,tsx}"],
    ignores: ["src/sdk/**"],
    rules: { "no-restricted-imports": ["error", { patterns: [SDK_BY_PATH] }] },
  },
  // ... and the panel's API through src/api.ts alone.
  {
    // The frame runtime is the plugin's side of the bridge: it wires the SDK's client, and
    // has no fetch of its own (its frame's policy says connect-src 'none').
    files: ["src/frame/**"],
    rules: { "no-restricted-imports": ["error", { patterns: [SDK_BY_PATH] }] },
  },
  {
    files: ["src/**/*.{ts,tsx}"],
    ignores: ["src/sdk/**", "src/api.ts", "src/frame/**"],
    rules: {
      "no-restricted-imports": ["error", { paths: [SDK_CLIENT], patterns: [SDK_BY_PATH] }],
      "no-restricted-globals": [
        "error",
        { name: "fetch", message: THROUGH_API_TS },
        { name: "XMLHttpRequest", message: THROUGH_API_TS },
      ],
    },
  },
]);
