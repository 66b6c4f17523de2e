// Entry point of the panel's web UI (built by web/build.mjs into the host's static folder).
import "./styles.css";

import * as React from "react";
import { createRoot } from "react-dom/client";

import { App } from "./App";
import { AuthProvider } from "./auth";
import { PluginsProvider } from "./plugins";

const root = document.getElementById("root");
if (!root) throw new Error("#root is missing from index.html");

createRoot(root).render(
  <React.StrictMode>
    <AuthProvider>
      <PluginsProvider>
        <App />
      </PluginsProvider>
    </AuthProvider>
  </React.StrictMode>,
);
