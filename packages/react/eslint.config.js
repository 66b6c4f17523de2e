// ESLint for @plugdock/react: `npm run lint` (part of `make lint`), the web UI's rules.
import js from "@eslint/js";
import { defineConfig, globalIgnores } from "eslint/config";
import reactHooks from "eslint-plugin-react-hooks";
import globals from "globals";
import tseslint from "typescript-eslint";

export default defineConfig([
  // Generated (scripts/openapi_types.py writes it next to web/'s copy), and the build.
  globalIgnores(["src/generated/", "dist/"]),
  {
    files: ["**/*.{js,mjs}"],
    extends: [js.configs.recommended],
    languageOptions: { globals: globals.node },
  },
  {
    files: ["src/**/*.{ts,tsx}"],
    extends: [js.configs.recommended, tseslint.configs.recommendedTypeChecked, reactHooks.configs.flat.recommended],
    languageOptions: {
      globals: globals.browser,
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      "react-hooks/exhaustive-deps": "error",
      // Every request goes through the provider's fetch (client.ts), never the page's own.
      "no-restricted-globals": ["error", { name: "fetch", message: "Call plugdock through client.ts (the provider's fetch)." }],
    },
  },
]);
