// Installed plugins: what is served (or why not), their pages and tables; admins update and
// disable/enable them here.
import * as React from "react";

import { type InstalledPlugin, errorMessage } from "../client";
import { Link } from "../Link";
import { Notice } from "../Notice";
import { usePlugdock } from "../provider";
import { PermissionsNote } from "./Permissions";
import { PluginSettings } from "./PluginSettings";
import { EnabledSwitch, offeredUpdate, useLifecycle } from "./lifecycle";

/** An ISO timestamp in the browser's locale; the text itself when it does not parse. */
function formatDate(iso: string): string {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}

export interface InstalledPluginsProps {
  /** Where the host mounted <Marketplace /> (the empty list links to it). */
  marketplacePath?: string;
  /** The host's path of a plugin page (default: the page's own path, as the panel mounts them). */
  pagePath?: (path: string) => string;
}

const STATE_LABELS: Record<string, string> = {
  mounted: "Running",
  failed: "Failed",
  "no backend": "No backend",
  disabled: "Disabled",
};

/** plugdock's installed-plugins screen, for the host to mount under a route of its choice. */
export function InstalledPlugins({ marketplacePath = "/marketplace", pagePath = (path) => path }: InstalledPluginsProps) {
  const { user, marketplace, plugins, client } = usePlugdock();
  const isAdmin = user?.role === "admin";
  const [rows, setRows] = React.useState<InstalledPlugin[] | null>(null);
  const [error, setError] = React.useState<string | null>(null);
  const [settingsOf, setSettingsOf] = React.useState<string | null>(null);

  const load = React.useCallback(async () => {
    try {
      setRows(await marketplace.installed());
      setError(null);
    } catch (e) {
      setError(errorMessage(e));
    }
  }, [marketplace]);

  React.useEffect(() => {
    // eslint-disable-next-line react-hooks/set-state-in-effect -- state is set only after an await (a known false positive: React issue 34905)
    void load();
  }, [load]);

  const life = useLifecycle(load);
  const { busy, notice } = life;
  const ui = new Map(plugins.map((p) => [p.id, p]));

  return (
    <section className="plugdock" aria-labelledby="installed-title">
      <h1 id="installed-title">Installed plugins</h1>
      {notice && <Notice notice={notice} onDismiss={() => life.setNotice(null)} />}
      {error && <Notice notice={{ kind: "error", text: `Could not load the installed plugins: ${error}` }} />}
      {!rows && !error && (
        <p className="muted" role="status">
          Loading…
        </p>
      )}
      {rows && rows.length === 0 && (
        <p className="empty-state">
          Nothing is installed yet. <Link to={marketplacePath}>Open the marketplace</Link>.
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
                {isAdmin && <th scope="col">Actions</th>}
              </tr>
            </thead>
            <tbody>
              {rows.map((row) => {
                const loaded = ui.get(row.id);
                const enabled = row.enabled !== false && row.state !== "disabled";
                const update = offeredUpdate(row);
                const working = busy?.id === row.id;
                return (
                  <tr key={row.id} aria-busy={working}>
                    <th scope="row">
                      {row.name} <code className="muted">{row.id}</code>
                      <PermissionsNote item={row} granted />
                    </th>
                    <td>
                      {row.version}
                      {update && (
                        <div>
                          <span className="tag tag-update">Update available {update}</span>
                        </div>
                      )}
                      {row.update_available && !update && (
                        <div className="update-note muted">
                          Version {row.update_available} cannot be installed here:{" "}
                          {row.update_problem ?? "this panel cannot take it"}
                        </div>
                      )}
                    </td>
                    <td>
                      <span className={`status status-${row.state.replace(" ", "-")}`}>
                        {STATE_LABELS[row.state] ?? row.state}
                      </span>
                      {row.error && <div className="error-text">{row.error}</div>}
                      {row.needs_configuration && <div className="error-text">Needs configuration</div>}
                      {enabled && row.routes.length > 0 && <div className="muted">{row.routes.length} API routes</div>}
                      {row.limits && <div className="muted limits-note">Limits: {row.limits}</div>}
                      <ReplicaLine replicas={row.replicas} />
                    </td>
                    <td>
                      {!enabled ? (
                        <span className="muted">Hidden while disabled</span>
                      ) : loaded?.error ? (
                        <span className="error-text">UI failed to load: {loaded.error}</span>
                      ) : loaded?.config && loaded.config.routes.length > 0 ? (
                        <ul className="plain-list">
                          {loaded.config.routes.map((route) => (
                            <li key={route.path}>
                              {route.path.includes(":") || route.path.includes("*") ? (
                                <code>{route.path}</code>
                              ) : (
                                <Link to={pagePath(route.path)}>{route.path}</Link>
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
                    {isAdmin && (
                      <td>
                        <div className="row-actions">
                          <EnabledSwitch
                            target={row}
                            enabled={enabled}
                            disabled={busy !== null}
                            onChange={(on) => void life.setEnabled(row, on)}
                          />
                          {row.has_settings && (
                            <button type="button" className="button button-small" onClick={() => setSettingsOf(row.id)}>
                              Settings<span className="visually-hidden"> of {row.name}</span>
                            </button>
                          )}
                          {update && (
                            <button
                              type="button"
                              className="button button-primary button-small"
                              disabled={busy !== null}
                              onClick={() => life.askUpdate(row)}
                            >
                              {working && busy?.action === "update" ? "Updating…" : "Update"}
                              <span className="visually-hidden"> {row.name}</span>
                            </button>
                          )}
                        </div>
                      </td>
                    )}
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
      {settingsOf && (
        <div className="card">
          <PluginSettings
            key={settingsOf}
            pluginId={settingsOf}
            call={client.request}
            onClose={() => setSettingsOf(null)}
            onSaved={() => void load()}
          />
        </div>
      )}
      {life.dialogs}
    </section>
  );
}

// Several panels sharing one database: on how many the plugin is served as installed.
function ReplicaLine({ replicas }: { replicas: InstalledPlugin["replicas"] }) {
  if (!replicas || replicas.total <= 1) return null;
  const behind = replicas.converged < replicas.total;
  return (
    <div className={behind ? "error-text" : "muted"} title={replicas.problems.join("\n") || undefined}>
      On {replicas.converged} of {replicas.total} replicas
      {behind && replicas.problems.length > 0 && `: ${replicas.problems[0]}`}
    </div>
  );
}
