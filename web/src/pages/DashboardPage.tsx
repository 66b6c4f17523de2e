import * as React from "react";

import { type Dashboard, dashboard, errorMessage } from "../api";
import { Notice } from "@plugdock/react";
import { formatDate } from "../format";
import { usePlugins } from "@plugdock/react";
import { Link } from "../router";

const ACTIONS: Record<string, string> = {
  install: "installed",
  uninstall: "uninstalled",
  upgrade: "upgraded",
  login: "signed in",
  login_failed: "failed to sign in",
  user_create: "created a user",
  password_change: "changed a password",
};

export function DashboardPage() {
  const [data, setData] = React.useState<Dashboard | null>(null);
  const [error, setError] = React.useState<string | null>(null);
  const { plugins } = usePlugins();

  React.useEffect(() => {
    dashboard.get().then(setData, (e) => setError(errorMessage(e)));
  }, []);

  return (
    <section aria-labelledby="dash-title">
      <h1 id="dash-title">Dashboard</h1>
      {error && <Notice notice={{ kind: "error", text: `Could not load the dashboard: ${error}` }} />}
      {!data && !error && (
        <p className="muted" role="status">
          Loading…
        </p>
      )}
      {data && (
        <>
          <p className="lead">Welcome, {data.user.username}.</p>
          <dl className="stats">
            <div className="card stat">
              <dt>Installed plugins</dt>
              <dd>{data.plugins_installed}</dd>
            </div>
            <div className="card stat">
              <dt>Plugin pages</dt>
              <dd>{plugins.reduce((n, p) => n + (p.config?.routes.length ?? 0), 0)}</dd>
            </div>
            <div className="card stat">
              <dt>Users</dt>
              <dd>{data.users}</dd>
            </div>
            <div className="card stat">
              <dt>Plugin changes</dt>
              <dd>{data.plugin_generation}</dd>
            </div>
          </dl>
          <p>
            <Link to="/marketplace" className="button button-primary">
              Browse the marketplace
            </Link>
          </p>
          {data.recent_activity && (
            <section aria-labelledby="activity-title" className="card">
              <h2 id="activity-title">Recent activity</h2>
              {data.recent_activity.length === 0 ? (
                <p className="muted">Nothing yet.</p>
              ) : (
                <ul className="activity">
                  {data.recent_activity.map((entry) => (
                    <li key={entry.id}>
                      <strong>{entry.actor ?? "someone"}</strong> {ACTIONS[entry.action] ?? entry.action}
                      {entry.plugin_id && (
                        <>
                          {" "}
                          <code>{entry.plugin_id}</code>
                          {entry.version && ` ${entry.version}`}
                        </>
                      )}{" "}
                      <time className="muted" dateTime={entry.at}>
                        {formatDate(entry.at)}
                      </time>
                    </li>
                  ))}
                </ul>
              )}
            </section>
          )}
        </>
      )}
    </section>
  );
}
