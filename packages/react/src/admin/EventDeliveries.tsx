// Host events delivered to plugins: what was delivered, what is retrying, what died (its
// last error), and which deliveries wait for an earlier one of the same key. Admins retry a
// dead one here (the CLI: plugdock events retry ID).
import * as React from "react";

import { type Delivery, type DeliveryStatus, errorMessage } from "../client";
import { Notice, type NoticeValue } from "../Notice";
import { usePlugdock } from "../provider";

const FILTERS: { label: string; status: DeliveryStatus | null }[] = [
  { label: "All", status: null },
  { label: "Dead", status: "dead" },
  { label: "Pending", status: "pending" },
  { label: "Done", status: "done" },
];

function formatDate(iso: string | null | undefined): string {
  if (!iso) return "—";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}

/** plugdock's event deliveries screen, for the host to mount under a route of its choice. */
export function EventDeliveries() {
  const { events, user } = usePlugdock();
  const isAdmin = user?.role === "admin";
  const [status, setStatus] = React.useState<DeliveryStatus | null>(null);
  const [rows, setRows] = React.useState<Delivery[] | null>(null);
  const [error, setError] = React.useState<string | null>(null);
  const [notice, setNotice] = React.useState<NoticeValue | null>(null);
  const [busy, setBusy] = React.useState<number | null>(null);

  const load = React.useCallback(async () => {
    try {
      setRows(await events.deliveries(status));
      setError(null);
    } catch (e) {
      setError(errorMessage(e));
    }
  }, [events, status]);

  React.useEffect(() => {
    // eslint-disable-next-line react-hooks/set-state-in-effect -- state is set only after an await (a known false positive: React issue 34905)
    void load();
  }, [load]);

  async function retry(row: Delivery) {
    setBusy(row.id);
    try {
      const answer = await events.retry(row.id);
      setNotice({ kind: "success", text: answer.message });
      await load();
    } catch (e) {
      setNotice({ kind: "error", text: `Could not retry delivery ${row.id}: ${errorMessage(e)}` });
    } finally {
      setBusy(null);
    }
  }

  return (
    <section className="plugdock" aria-labelledby="deliveries-title">
      <h1 id="deliveries-title">Event deliveries</h1>
      <p className="muted">
        Host events handed to the plugins that handle them. A failed delivery is retried with a growing
        wait; after its last attempt it is dead until an admin retries it. A delivery waits while an earlier
        one of the same key has not gone through.
      </p>
      <div className="row-actions" role="group" aria-label="Show">
        {FILTERS.map((filter) => (
          <button
            key={filter.label}
            type="button"
            className={`button button-small${filter.status === status ? " button-primary" : ""}`}
            aria-pressed={filter.status === status}
            onClick={() => setStatus(filter.status)}
          >
            {filter.label}
          </button>
        ))}
      </div>
      {notice && <Notice notice={notice} onDismiss={() => setNotice(null)} />}
      {error && <Notice notice={{ kind: "error", text: `Could not load the deliveries: ${error}` }} />}
      {!rows && !error && (
        <p className="muted" role="status">
          Loading…
        </p>
      )}
      {rows && rows.length === 0 && <p className="empty-state">No deliveries{status ? ` ${status}` : ""}.</p>}
      {rows && rows.length > 0 && (
        <div className="table-wrap card">
          <table className="table">
            <caption className="visually-hidden">Event deliveries</caption>
            <thead>
              <tr>
                <th scope="col">Event</th>
                <th scope="col">Plugin</th>
                <th scope="col">Status</th>
                <th scope="col">Attempts</th>
                <th scope="col">Emitted</th>
                {isAdmin && <th scope="col">Actions</th>}
              </tr>
            </thead>
            <tbody>
              {rows.map((row) => (
                <tr key={row.id} aria-busy={busy === row.id}>
                  <th scope="row">
                    {row.event} <code className="muted">#{row.id}</code>
                    {row.event_key && <div className="muted">key {row.event_key}</div>}
                  </th>
                  <td>
                    {row.plugin_id} <code className="muted">{row.handler}</code>
                  </td>
                  <td>
                    <span className={`status status-delivery-${row.status}`}>{row.status}</span>
                    {row.held && row.status !== "done" && (
                      <div className="muted">Waiting for an earlier delivery of this key</div>
                    )}
                    {row.status === "pending" && row.attempts > 0 && (
                      <div className="muted">Next attempt {formatDate(row.next_at)}</div>
                    )}
                    {row.last_error && <div className="error-text">{row.last_error}</div>}
                  </td>
                  <td>{row.attempts}</td>
                  <td>{formatDate(row.emitted_at)}</td>
                  {isAdmin && (
                    <td>
                      {row.status === "dead" && (
                        <button
                          type="button"
                          className="button button-primary button-small"
                          disabled={busy !== null}
                          onClick={() => void retry(row)}
                        >
                          {busy === row.id ? "Retrying…" : "Retry"}
                          <span className="visually-hidden"> delivery {row.id}</span>
                        </button>
                      )}
                    </td>
                  )}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
