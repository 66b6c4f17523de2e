// Admin page "SMS": send a text message through the configured gateway, and the log of
// every message sent. Until an admin sets the gateway URL and key (Installed plugins >
// Settings) the API answers 503 "needs configuration", shown here as it comes.
import { api as client, errorMessage, notify } from "@plugdock/sdk";
import * as React from "react";

const SMS_API = "/api/v1/sms";

interface SmsOut {
  id: number;
  recipient: string;
  sender: string;
  body: string;
  status: "sent" | "failed";
  gateway_status: number | null;
  error: string | null;
  sent_by: string;
  created_at: string;
}

interface SmsPage {
  items: SmsOut[];
  total: number;
}

export function MessagesPage() {
  const [page, setPage] = React.useState<SmsPage | null>(null);
  const [error, setError] = React.useState<string | null>(null);
  const [to, setTo] = React.useState("");
  const [text, setText] = React.useState("");
  const [sending, setSending] = React.useState(false);
  const [reloadKey, setReloadKey] = React.useState(0);

  React.useEffect(() => {
    let cancelled = false;
    client
      .get<SmsPage>(`${SMS_API}/messages?limit=50`)
      .then((result) => {
        if (!cancelled) {
          setPage(result);
          setError(null);
        }
      })
      .catch((e: unknown) => {
        if (!cancelled) setError(errorMessage(e));
      });
    return () => {
      cancelled = true;
    };
  }, [reloadKey]);

  const send = async (event: React.FormEvent) => {
    event.preventDefault();
    setSending(true);
    try {
      await client.post(`${SMS_API}/messages`, { to, text });
      notify(`Message to ${to} sent.`, "success");
      setText("");
    } catch (e) {
      setError(errorMessage(e));
    } finally {
      setSending(false);
      setReloadKey((k) => k + 1);
    }
  };

  return (
    <section className="sms-page">
      <form onSubmit={send} aria-label="Send an SMS">
        <label>
          To <input value={to} onChange={(e) => setTo(e.target.value)} placeholder="+4915112345678" />
        </label>
        <label>
          Text <textarea value={text} maxLength={640} onChange={(e) => setText(e.target.value)} />
        </label>
        <button type="submit" disabled={sending || !to || !text}>
          {sending ? "Sending…" : "Send"}
        </button>
      </form>
      {error && <p role="alert">{error}</p>}
      <table aria-label="Messages">
        <thead>
          <tr>
            <th>When</th>
            <th>To</th>
            <th>Text</th>
            <th>Status</th>
            <th>By</th>
          </tr>
        </thead>
        <tbody>
          {(page?.items ?? []).map((m) => (
            <tr key={m.id}>
              <td>{new Date(m.created_at).toLocaleString()}</td>
              <td>{m.recipient}</td>
              <td>{m.body}</td>
              <td title={m.error ?? undefined}>{m.status}</td>
              <td>{m.sent_by}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {page && <p>{page.total} message(s)</p>}
    </section>
  );
}

export default MessagesPage;
