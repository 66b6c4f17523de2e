// Admin page "Support > Chats": every chat session with its visitor's contact details,
// status, message count and rating (1.1.0); select one to read its transcript, the
// visitor's comment, or close it.
// Calls go through @plugdock/sdk's `api`: the signed-in admin's session, nothing copied.
import { api as client, errorMessage, notify } from "@plugdock/sdk";
import * as React from "react";

import { CHAT_API, type SessionStatus, formatTime } from "../lib/api";
import { type RatedDetail, type RatedPage, starsText } from "../lib/rating";

const PAGE_SIZE = 25;

type Filter = "all" | SessionStatus;

export function ChatsPage() {
  const [filter, setFilter] = React.useState<Filter>("all");
  const [offset, setOffset] = React.useState(0);
  const [page, setPage] = React.useState<RatedPage | null>(null);
  const [listError, setListError] = React.useState<string | null>(null);
  const [loadingList, setLoadingList] = React.useState(false);
  const [selectedId, setSelectedId] = React.useState<number | null>(null);
  const [detail, setDetail] = React.useState<RatedDetail | null>(null);
  const [detailError, setDetailError] = React.useState<string | null>(null);
  const [closing, setClosing] = React.useState(false);
  const [reloadKey, setReloadKey] = React.useState(0);

  React.useEffect(() => {
    let cancelled = false;
    const params = new URLSearchParams({ limit: String(PAGE_SIZE), offset: String(offset) });
    if (filter !== "all") params.set("status", filter);
    setLoadingList(true);
    client
      .get<RatedPage>(`${CHAT_API}/sessions?${params}`)
      .then((result) => {
        if (!cancelled) {
          setPage(result);
          setListError(null);
        }
      })
      .catch((e: unknown) => {
        if (!cancelled) setListError(errorMessage(e));
      })
      .finally(() => {
        if (!cancelled) setLoadingList(false);
      });
    return () => {
      cancelled = true;
    };
  }, [filter, offset, reloadKey]);

  React.useEffect(() => {
    if (selectedId === null) {
      setDetail(null);
      return;
    }
    let cancelled = false;
    setDetailError(null);
    client
      .get<RatedDetail>(`${CHAT_API}/admin/sessions/${selectedId}`)
      .then((result) => {
        if (!cancelled) setDetail(result);
      })
      .catch((e: unknown) => {
        if (!cancelled) setDetailError(errorMessage(e));
      });
    return () => {
      cancelled = true;
    };
  }, [selectedId, reloadKey]);

  const closeSession = async (id: number) => {
    setClosing(true);
    try {
      await client.post(`${CHAT_API}/sessions/${id}/close`);
      notify(`Chat ${id} closed.`, "success");
      setReloadKey((k) => k + 1);
    } catch (e) {
      setDetailError(errorMessage(e));
    } finally {
      setClosing(false);
    }
  };

  const total = page?.total ?? 0;
  const first = total === 0 ? 0 : offset + 1;
  const last = Math.min(offset + PAGE_SIZE, total);

  return (
    <section style={styles.page} aria-labelledby="chats-title">
      <header style={styles.toolbar}>
        <h1 id="chats-title" style={styles.h1}>
          Chats
        </h1>
        <label style={styles.filter}>
          Status{" "}
          <select
            value={filter}
            onChange={(e) => {
              setFilter(e.target.value as Filter);
              setOffset(0);
            }}
          >
            <option value="all">All</option>
            <option value="open">Open</option>
            <option value="closed">Closed</option>
          </select>
        </label>
        <button type="button" onClick={() => setReloadKey((k) => k + 1)} disabled={loadingList}>
          {loadingList ? "Loading…" : "Refresh"}
        </button>
      </header>

      {listError && (
        <p role="alert" style={styles.error}>
          Could not load chats: {listError}
        </p>
      )}

      <div style={styles.columns}>
        <div style={styles.listColumn}>
          <table style={styles.table}>
            <thead>
              <tr>
                <th style={styles.th}>Visitor</th>
                <th style={styles.th}>Email</th>
                <th style={styles.th}>Phone</th>
                <th style={styles.th}>Status</th>
                <th style={{ ...styles.th, textAlign: "right" }}>Messages</th>
                <th style={styles.th}>Rating</th>
                <th style={styles.th}>Started</th>
              </tr>
            </thead>
            <tbody>
              {page?.items.map((s) => (
                <tr
                  key={s.id}
                  style={s.id === selectedId ? styles.selectedRow : undefined}
                  aria-selected={s.id === selectedId}
                >
                  <td style={styles.td}>
                    <button
                      type="button"
                      style={styles.linkButton}
                      onClick={() => setSelectedId(s.id)}
                      aria-label={`Open the chat with ${s.guest_name}`}
                    >
                      {s.guest_name}
                    </button>
                  </td>
                  <td style={styles.td}>
                    <a href={`mailto:${s.guest_email}`}>{s.guest_email}</a>
                  </td>
                  <td style={styles.td}>{s.guest_phone ?? "—"}</td>
                  <td style={styles.td}>
                    <StatusBadge status={s.status} />
                  </td>
                  <td style={{ ...styles.td, textAlign: "right" }}>{s.message_count}</td>
                  <td style={styles.td}>
                    {s.rating ? (
                      <span style={styles.stars} aria-label={`${s.rating} of 5 stars`}>
                        {starsText(s.rating)}
                      </span>
                    ) : (
                      <span style={styles.muted}>—</span>
                    )}
                  </td>
                  <td style={styles.td}>{formatTime(s.created_at)}</td>
                </tr>
              ))}
              {page && page.items.length === 0 && (
                <tr>
                  <td style={styles.td} colSpan={7}>
                    No chats yet.
                  </td>
                </tr>
              )}
            </tbody>
          </table>
          <nav style={styles.pager} aria-label="Pages">
            <span>
              {first}–{last} of {total}
            </span>
            <button
              type="button"
              disabled={offset === 0}
              onClick={() => setOffset(Math.max(0, offset - PAGE_SIZE))}
            >
              Previous
            </button>
            <button
              type="button"
              disabled={offset + PAGE_SIZE >= total}
              onClick={() => setOffset(offset + PAGE_SIZE)}
            >
              Next
            </button>
          </nav>
        </div>

        <aside style={styles.detailColumn} aria-label="Transcript">
          {selectedId === null && <p style={styles.muted}>Select a chat to read it.</p>}
          {detailError && (
            <p role="alert" style={styles.error}>
              {detailError}
            </p>
          )}
          {detail && detail.id === selectedId && (
            <>
              <div style={styles.detailHeader}>
                <div>
                  <h2 style={styles.h2}>{detail.guest_name}</h2>
                  <p style={styles.muted}>
                    {detail.guest_email}
                    {detail.guest_phone ? ` · ${detail.guest_phone}` : ""} · started{" "}
                    {formatTime(detail.created_at)}
                  </p>
                </div>
                {detail.status === "open" ? (
                  <button type="button" onClick={() => void closeSession(detail.id)} disabled={closing}>
                    {closing ? "Closing…" : "Close chat"}
                  </button>
                ) : (
                  <StatusBadge status="closed" />
                )}
              </div>
              {detail.feedback ? (
                <p style={styles.feedback} aria-label="Visitor's rating">
                  <span style={styles.stars} aria-label={`${detail.feedback.stars} of 5 stars`}>
                    {starsText(detail.feedback.stars)}
                  </span>{" "}
                  {detail.feedback.comment ? `“${detail.feedback.comment}”` : "(no comment)"}{" "}
                  <span style={styles.muted}>rated {formatTime(detail.feedback.created_at)}</span>
                </p>
              ) : (
                <p style={styles.muted}>Not rated yet.</p>
              )}
              <ol style={styles.transcript}>
                {detail.messages.map((m) => (
                  <li key={m.id} style={m.sender === "bot" ? styles.botLine : styles.guestLine}>
                    <strong>{m.sender === "bot" ? "Bot" : detail.guest_name}</strong>{" "}
                    <span style={styles.muted}>{formatTime(m.created_at)}</span>
                    <div style={styles.content}>{m.content}</div>
                  </li>
                ))}
              </ol>
            </>
          )}
        </aside>
      </div>
    </section>
  );
}

export default ChatsPage;

function StatusBadge({ status }: { status: SessionStatus }) {
  return (
    <span style={{ ...styles.badge, ...(status === "open" ? styles.badgeOpen : styles.badgeClosed) }}>
      {status}
    </span>
  );
}

const styles: Record<string, React.CSSProperties> = {
  page: { padding: 16, fontFamily: "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif" },
  toolbar: { display: "flex", alignItems: "center", gap: 12, marginBottom: 12 },
  h1: { margin: 0, fontSize: 22, flex: 1 },
  h2: { margin: 0, fontSize: 18 },
  filter: { fontSize: 14 },
  error: { color: "#b91c1c" },
  muted: { color: "#6b7280", fontSize: 13, margin: "2px 0" },
  columns: { display: "flex", gap: 16, alignItems: "flex-start", flexWrap: "wrap" },
  listColumn: { flex: "2 1 520px", overflowX: "auto" },
  detailColumn: {
    flex: "1 1 320px",
    border: "1px solid #e5e7eb",
    borderRadius: 8,
    padding: 12,
    minHeight: 200,
  },
  table: { width: "100%", borderCollapse: "collapse", fontSize: 14 },
  th: { textAlign: "left", borderBottom: "2px solid #e5e7eb", padding: "6px 8px" },
  td: { borderBottom: "1px solid #f3f4f6", padding: "6px 8px", verticalAlign: "top" },
  selectedRow: { background: "#eff6ff" },
  linkButton: {
    border: "none",
    background: "none",
    padding: 0,
    color: "#1d4ed8",
    cursor: "pointer",
    font: "inherit",
    textDecoration: "underline",
  },
  pager: { display: "flex", alignItems: "center", gap: 8, marginTop: 8, fontSize: 13 },
  detailHeader: { display: "flex", justifyContent: "space-between", gap: 8, marginBottom: 8 },
  transcript: { listStyle: "none", margin: 0, padding: 0, display: "flex", flexDirection: "column", gap: 8 },
  botLine: { background: "#f9fafb", borderRadius: 6, padding: 8 },
  guestLine: { background: "#eff6ff", borderRadius: 6, padding: 8 },
  content: { whiteSpace: "pre-wrap", overflowWrap: "anywhere", marginTop: 4 },
  stars: { color: "#f59e0b", letterSpacing: 1 },
  feedback: { background: "#fffbeb", borderRadius: 6, padding: 8, margin: "0 0 8px", fontSize: 14 },
  badge: { fontSize: 12, padding: "2px 8px", borderRadius: 999, fontWeight: 600 },
  badgeOpen: { background: "#dcfce7", color: "#166534" },
  badgeClosed: { background: "#e5e7eb", color: "#374151" },
};
