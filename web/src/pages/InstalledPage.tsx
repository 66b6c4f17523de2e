import * as React from "react";

import { type InstalledPlugin, api, errorMessage, formatDate } from "../api";
import { Notice } from "../components/Notice";
import { usePlugins } from "../plugins";
import { Link } from "../router";

const STATE_LABELS: Record<string, string> = {
  mounted: "Running",
  failed: "Failed",
  "no backend": "No backend",
};

export function InstalledPage() {
  const [rows, setRows] = React.useState<InstalledPlugin[] | null>(null);
  const [error, setError] = React.useState<string | null>(null);
  const { plugins } = usePlugins();

  React.useEffect(() => {
    api.get<InstalledPlugin[]>("/api/v1/marketplace/installed").then(setRows, (e) => setError(errorMessage(e)));
  }, []);

  const ui = new Map(plugins.map((p) => [p.id, p]));

  return (
    <section aria-labelledby="installed-title">
      <h1 id="installed-title">Installed plugins</h1>
      {error && <Notice notice={{ kind: "error", text: `Could not load the installed plugins: ${error}` }} />}
      {!rows && !error && (
        <p className="muted" role="status">
          Loading…
        </p>
      )}
      {rows && rows.length === 0 && (
        <p className="empty-state">
          Nothing is installed yet. <Link to="/marketplace">Open the marketplace</Link>.
        </p>
      )}
      {rows && rows.length > 0 && (
        <div className="table-wrap card">
          <table className="table">
            <caption className="visually-hidden">Installed plugins</caption>
            <thead>
              <tr>
                <th scope="col">Plugin</th>
                <th scope="col">Version</th>
                <th scope="col">Backend</th>
                <th scope="col">Pages</th>
                <th scope="col">Tables</th>
                <th scope="col">Installed</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((row) => {
                const loaded = ui.get(row.id);
                return (
                  <tr key={row.id}>
                    <th scope="row">
                      {row.name} <code className="muted">{row.id}</code>
                    </th>
                    <td>{row.version}</td>
                    <td>
                      <span className={`status status-${row.state.replace(" ", "-")}`}>
                        {STATE_LABELS[row.state] ?? row.state}
                      </span>
                      {row.error && <div className="error-text">{row.error}</div>}
                      {row.routes.length > 0 && <div className="muted">{row.routes.length} API routes</div>}
                    </td>
                    <td>
                      {loaded?.error ? (
                        <span className="error-text">UI failed to load: {loaded.error}</span>
                      ) : loaded?.config && loaded.config.routes.length > 0 ? (
                        <ul className="plain-list">
                          {loaded.config.routes.map((route) => (
                            <li key={route.path}>
                              {route.path.includes(":") || route.path.includes("*") ? (
                                <code>{route.path}</code>
                              ) : (
                                <Link to={route.path}>{route.path}</Link>
                              )}
                            </li>
                          ))}
                        </ul>
                      ) : (
                        <span className="muted">—</span>
                      )}
                    </td>
                    <td>{row.tables.length ? row.tables.join(", ") : "—"}</td>
                    <td>
                      {formatDate(row.installed_at)}
                      {row.installed_by && <div className="muted">by {row.installed_by}</div>}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
