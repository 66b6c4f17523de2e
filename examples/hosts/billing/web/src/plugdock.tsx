// Everything plugdock in the billing UI, in this one file.
//
// Today: a "Plugins" page listing the installed plugins' UIs (GET /api/v1/frontend/plugins)
// with links. When @plugdock/react is merged, this file wires it instead: a
// <PlugdockProvider fetch={hostFetch}> around PlugdockRoutes, its Marketplace and
// InstalledPlugins on /addons, PluginPage for each plugin route, PluginWidgets (the
// chatbot's bubble) and usePluginNav for the nav items. Nothing outside this file changes.
import { useEffect, useState } from "react";

import { api, hostFetch } from "./api";
import { Link } from "./router";

/** Where plugdock's pages live in the billing UI. Not /plugins: plugdock serves the
 * plugins' frame documents and bundles there. */
export const PLUGDOCK_BASE = "/addons";

export type NavItem = { to: string; label: string };

/** The nav entries plugdock adds to the billing UI's menu. */
export function usePlugdockNav(): NavItem[] {
  return [{ to: PLUGDOCK_BASE, label: "Plugins" }];
}

type FrontendPlugin = { id: string; name: string; version: string; frame_url: string };

/** The page for a path under PLUGDOCK_BASE, or null when the path is not plugdock's. */
export function PlugdockRoutes(props: { path: string }) {
  if (props.path !== PLUGDOCK_BASE && !props.path.startsWith(`${PLUGDOCK_BASE}/`)) return null;
  return <PluginsPage />;
}

function PluginsPage() {
  const [plugins, setPlugins] = useState<FrontendPlugin[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    api<FrontendPlugin[]>("/api/v1/frontend/plugins").then(setPlugins, (e: Error) =>
      setError(e.message),
    );
  }, []);
  return (
    <section>
      <h1>Plugins</h1>
      <p className="muted">
        Installed through plugdock's marketplace API (<code>/api/v1/marketplace</code>) or{" "}
        <code>plugdock install</code>.
      </p>
      {error && <p className="error">{error}</p>}
      {plugins === null && !error && <p>Loading…</p>}
      {plugins?.length === 0 && <p data-testid="no-plugins">No plugin with a UI is installed.</p>}
      <ul data-testid="plugins">
        {plugins?.map((plugin) => (
          <li key={plugin.id}>
            <a href={plugin.frame_url}>{plugin.name}</a> <span className="muted">{plugin.version}</span>
          </li>
        ))}
      </ul>
      <p>
        <Link to="/invoices">Back to invoices</Link>
      </p>
    </section>
  );
}

// The host fetch callback @plugdock/react will take (the billing cookie + X-Plugdock-CSRF).
export const plugdockFetch = hostFetch;
