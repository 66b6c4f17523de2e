// Entry point of the panel's web UI (built by web/build.mjs into the host's static folder).
// The package's stylesheet first: the shell's own (with its --plugdock-* colours) comes after.
import "@plugdock/react/src/styles.css";
import "./styles.css";

import * as React from "react";
import { createRoot } from "react-dom/client";

import { PlugdockProvider } from "@plugdock/react";
// eslint-disable-next-line no-restricted-imports -- handed to ui:same-origin plugins as props.api, never called here
import { api, notify } from "@plugdock/sdk";

import { App, CORE_PATHS } from "./App";
import { panelFetch } from "./api";
import { AuthProvider, useAuth } from "./auth";
import { navigate } from "./router";

const root = document.getElementById("root");
if (!root) throw new Error("#root is missing from index.html");

/** Same-origin plugins run in the shell's page: their bundles share its import map's React and SDK. */
const importBundle = (url: string) => import(/* webpackIgnore: true */ url) as Promise<unknown>;

/** @plugdock/react as the panel uses it: the panel's session, router, notices and import map. */
function PanelPlugdock({ children }: { children: React.ReactNode }) {
  const { user } = useAuth();
  const plugdockUser = user ? { id: user.id, username: user.username, role: user.role } : null;
  return (
    <PlugdockProvider
      fetch={panelFetch}
      user={plugdockUser}
      navigate={navigate}
      notify={notify}
      corePages={CORE_PATHS}
      importBundle={importBundle}
      pluginApi={api}
    >
      {children}
    </PlugdockProvider>
  );
}

createRoot(root).render(
  <React.StrictMode>
    <AuthProvider>
      <PanelPlugdock>
        <App />
      </PanelPlugdock>
    </AuthProvider>
  </React.StrictMode>,
);
