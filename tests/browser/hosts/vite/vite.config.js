// The test host's build: React's automatic JSX runtime through Vite's own transform (no plugin).
import { defineConfig } from "vite";

export default defineConfig({
  oxc: { jsx: { runtime: "automatic" } },
  build: { outDir: process.env.HOST_OUT_DIR || "dist", emptyOutDir: true },
  logLevel: "warn",
});
