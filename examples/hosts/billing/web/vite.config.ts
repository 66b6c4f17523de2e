import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

// `npm run build` writes dist/, which the billing FastAPI app serves (billing/app.py).
// `npm run dev` proxies the API to a billing app on :8100 (make run-billing).
const api = { target: "http://127.0.0.1:8100", changeOrigin: false };

export default defineConfig({
  plugins: [react()],
  // @plugdock/react is linked from packages/react (package.json's file: dependency), whose own
  // node_modules holds a React for its tools: one React, billing's, for the whole page.
  resolve: { dedupe: ["react", "react-dom"] },
  server: { proxy: { "/api": api, "/plugins": api, "/plugins-ui": api } },
});
