// The chat window a site visitor sees: a short form (name, email, phone), then the
// conversation with the bot. The session id and its token are kept in localStorage so a
// reload continues the same chat.
import { ApiError } from "@plugdock/sdk";
import * as React from "react";

import { CHAT_API, type MessageOut, type SessionStatus, chatClient, chatErrorText, formatTime } from "../lib/api";
import { type RatingIn, type RatingOut, rateSession } from "../lib/rating";
import RateChat from "./RateChat";

export const SESSION_STORAGE_KEY = "plugdock_ai_chatbot_session";
const MAX_MESSAGE_LENGTH = 4000;

interface StoredSession {
  id: number;
  token: string;
}

export interface ChatWidgetProps {
  /** Base URL of the chat API; default "/api/v1/chat" on the same origin. */
  apiBase?: string;
  /** Focus the first field when shown (the bubble sets this when it opens). */
  autoFocus?: boolean;
}

function loadStored(): StoredSession | null {
  try {
    const raw = localStorage.getItem(SESSION_STORAGE_KEY);
    if (!raw) return null;
    const value = JSON.parse(raw) as Partial<StoredSession>;
    return typeof value.id === "number" && typeof value.token === "string"
      ? { id: value.id, token: value.token }
      : null;
  } catch {
    return null;
  }
}

function saveStored(session: StoredSession | null): void {
  try {
    if (session) localStorage.setItem(SESSION_STORAGE_KEY, JSON.stringify(session));
    else localStorage.removeItem(SESSION_STORAGE_KEY);
  } catch {
    // storage disabled (private mode): the chat still works until the page reloads
  }
}

export function ChatWidget({ apiBase = CHAT_API, autoFocus = false }: ChatWidgetProps) {
  const client = React.useMemo(() => chatClient(apiBase), [apiBase]);
  const [session, setSession] = React.useState<StoredSession | null>(null);
  const [status, setStatus] = React.useState<SessionStatus>("open");
  const [messages, setMessages] = React.useState<MessageOut[]>([]);
  const [loading, setLoading] = React.useState(true);
  const [error, setError] = React.useState<string | null>(null);

  // Continue a stored chat, if its token still works.
  React.useEffect(() => {
    const stored = loadStored();
    if (!stored) {
      setLoading(false);
      return;
    }
    let cancelled = false;
    client
      .transcript(stored.id, stored.token)
      .then((t) => {
        if (cancelled) return;
        setSession(stored);
        setStatus(t.status);
        setMessages(t.messages);
      })
      .catch((e: unknown) => {
        if (cancelled) return;
        if (e instanceof ApiError && [401, 403, 404].includes(e.status)) saveStored(null);
        else setError(chatErrorText(e));
      })
      .finally(() => {
        if (!cancelled) setLoading(false);
      });
    return () => {
      cancelled = true;
    };
  }, [client]);

  const startNew = () => {
    saveStored(null);
    setSession(null);
    setMessages([]);
    setStatus("open");
    setError(null);
  };

  if (loading) {
    return <p style={styles.note}>Loading your conversation…</p>;
  }
  if (!session) {
    return (
      <StartForm
        autoFocus={autoFocus}
        error={error}
        onStart={async (body) => {
          setError(null);
          try {
            const started = await client.start(body);
            const stored = { id: started.session_id, token: started.token };
            saveStored(stored);
            setSession(stored);
            setStatus(started.status);
            setMessages([started.greeting]);
          } catch (e) {
            setError(chatErrorText(e));
          }
        }}
      />
    );
  }
  return (
    <Conversation
      messages={messages}
      status={status}
      error={error}
      autoFocus={autoFocus}
      onStartNew={startNew}
      onRate={(rating) => rateSession(session.id, session.token, rating, apiBase)}
      onSend={async (content) => {
        setError(null);
        try {
          const answer = await client.send(session.id, session.token, content);
          setMessages((current) => [...current, answer.message, answer.reply]);
          return true;
        } catch (e) {
          if (e instanceof ApiError && e.status === 409) setStatus("closed");
          setError(chatErrorText(e));
          return false;
        }
      }}
    />
  );
}

export default ChatWidget;

// -- the form ------------------------------------------------------------------------------

interface StartFormProps {
  autoFocus: boolean;
  error: string | null;
  onStart: (body: { guest_name: string; guest_email: string; guest_phone: string | null }) => Promise<void>;
}

function StartForm({ autoFocus, error, onStart }: StartFormProps) {
  const [name, setName] = React.useState("");
  const [email, setEmail] = React.useState("");
  const [phone, setPhone] = React.useState("");
  const [busy, setBusy] = React.useState(false);
  const formId = React.useId();

  const submit = async (event: React.FormEvent<HTMLFormElement>) => {
    event.preventDefault();
    if (busy) return;
    setBusy(true);
    try {
      await onStart({
        guest_name: name.trim(),
        guest_email: email.trim(),
        guest_phone: phone.trim() || null,
      });
    } finally {
      setBusy(false);
    }
  };

  return (
    <form onSubmit={submit} style={styles.form} aria-describedby={`${formId}-intro`}>
      <p id={`${formId}-intro`} style={styles.note}>
        Tell us who you are and we'll start a chat. We only use these details to reply to you.
      </p>
      <label style={styles.label} htmlFor={`${formId}-name`}>
        Name
      </label>
      <input
        id={`${formId}-name`}
        style={styles.input}
        value={name}
        onChange={(e) => setName(e.target.value)}
        required
        maxLength={100}
        autoComplete="name"
        autoFocus={autoFocus}
      />
      <label style={styles.label} htmlFor={`${formId}-email`}>
        Email
      </label>
      <input
        id={`${formId}-email`}
        style={styles.input}
        type="email"
        value={email}
        onChange={(e) => setEmail(e.target.value)}
        required
        maxLength={255}
        autoComplete="email"
      />
      <label style={styles.label} htmlFor={`${formId}-phone`}>
        Phone <span style={styles.optional}>(optional)</span>
      </label>
      <input
        id={`${formId}-phone`}
        style={styles.input}
        type="tel"
        value={phone}
        onChange={(e) => setPhone(e.target.value)}
        maxLength={50}
        pattern="[0-9 +\-()]*"
        title="Digits, spaces and + - ( ) only"
        autoComplete="tel"
      />
      {error && (
        <p role="alert" style={styles.error}>
          {error}
        </p>
      )}
      <button type="submit" style={styles.primary} disabled={busy}>
        {busy ? "Starting…" : "Start chat"}
      </button>
    </form>
  );
}

// -- the conversation ----------------------------------------------------------------------

interface ConversationProps {
  messages: MessageOut[];
  status: SessionStatus;
  error: string | null;
  autoFocus: boolean;
  onSend: (content: string) => Promise<boolean>;
  onRate: (rating: RatingIn) => Promise<RatingOut>;
  onStartNew: () => void;
}

function Conversation({
  messages,
  status,
  error,
  autoFocus,
  onSend,
  onRate,
  onStartNew,
}: ConversationProps) {
  const [draft, setDraft] = React.useState("");
  const [pending, setPending] = React.useState<string | null>(null);
  const endRef = React.useRef<HTMLDivElement>(null);
  const inputId = React.useId();

  React.useEffect(() => {
    endRef.current?.scrollIntoView?.({ block: "end" });
  }, [messages.length, pending]);

  const send = async () => {
    const content = draft.trim();
    if (!content || pending !== null || status !== "open") return;
    setPending(content);
    setDraft("");
    const ok = await onSend(content);
    if (!ok) setDraft(content); // give the text back so nothing is lost
    setPending(null);
  };

  return (
    <div style={styles.conversation}>
      <div role="log" aria-live="polite" aria-label="Conversation" style={styles.log}>
        {messages.map((m) => (
          <Bubble key={m.id} sender={m.sender} text={m.content} time={formatTime(m.created_at)} />
        ))}
        {pending !== null && (
          <>
            <Bubble sender="guest" text={pending} time="sending…" />
            <p style={styles.typing} aria-label="The assistant is typing">
              …
            </p>
          </>
        )}
        <div ref={endRef} />
      </div>
      {error && (
        <p role="alert" style={styles.error}>
          {error}
        </p>
      )}
      {messages.some((m) => m.sender === "guest") && <RateChat onRate={onRate} />}
      {status === "closed" ? (
        <div style={styles.closed}>
          <p style={styles.note}>This conversation has been closed.</p>
          <button type="button" style={styles.primary} onClick={onStartNew}>
            Start a new chat
          </button>
        </div>
      ) : (
        <form
          style={styles.composer}
          onSubmit={(e) => {
            e.preventDefault();
            void send();
          }}
        >
          <label htmlFor={inputId} style={styles.visuallyHidden}>
            Your message
          </label>
          <textarea
            id={inputId}
            style={styles.textarea}
            rows={2}
            value={draft}
            maxLength={MAX_MESSAGE_LENGTH}
            placeholder="Type your message…"
            autoFocus={autoFocus}
            onChange={(e) => setDraft(e.target.value)}
            onKeyDown={(e) => {
              // Enter sends, Shift+Enter starts a new line.
              if (e.key === "Enter" && !e.shiftKey && !e.nativeEvent.isComposing) {
                e.preventDefault();
                void send();
              }
            }}
          />
          <button
            type="submit"
            style={styles.primary}
            disabled={pending !== null || draft.trim() === ""}
          >
            Send
          </button>
        </form>
      )}
    </div>
  );
}

function Bubble({ sender, text, time }: { sender: "guest" | "bot"; text: string; time: string }) {
  const mine = sender === "guest";
  return (
    <div style={{ ...styles.row, justifyContent: mine ? "flex-end" : "flex-start" }}>
      <div style={mine ? styles.guestBubble : styles.botBubble}>
        <span style={styles.visuallyHidden}>{mine ? "You said: " : "Assistant said: "}</span>
        <span style={styles.text}>{text}</span>
        <span style={styles.time}>{time}</span>
      </div>
    </div>
  );
}

const styles: Record<string, React.CSSProperties> = {
  form: { display: "flex", flexDirection: "column", gap: 6, padding: 12 },
  label: { fontSize: 13, fontWeight: 600 },
  optional: { fontWeight: 400, color: "#6b7280" },
  input: { padding: "8px 10px", border: "1px solid #d1d5db", borderRadius: 6, fontSize: 14 },
  primary: {
    padding: "8px 14px",
    border: "none",
    borderRadius: 6,
    background: "#2563eb",
    color: "#fff",
    fontWeight: 600,
    cursor: "pointer",
  },
  note: { margin: "4px 0", fontSize: 13, color: "#4b5563" },
  error: { margin: "4px 12px", fontSize: 13, color: "#b91c1c" },
  conversation: { display: "flex", flexDirection: "column", height: "100%", minHeight: 0 },
  log: { flex: 1, overflowY: "auto", padding: 12, display: "flex", flexDirection: "column", gap: 8 },
  row: { display: "flex" },
  guestBubble: {
    maxWidth: "80%",
    padding: "8px 10px",
    borderRadius: "12px 12px 2px 12px",
    background: "#2563eb",
    color: "#fff",
    display: "flex",
    flexDirection: "column",
  },
  botBubble: {
    maxWidth: "80%",
    padding: "8px 10px",
    borderRadius: "12px 12px 12px 2px",
    background: "#f3f4f6",
    color: "#111827",
    display: "flex",
    flexDirection: "column",
  },
  text: { whiteSpace: "pre-wrap", overflowWrap: "anywhere", fontSize: 14 },
  time: { fontSize: 11, opacity: 0.7, marginTop: 2 },
  typing: { margin: 0, color: "#6b7280", fontSize: 20, lineHeight: 1 },
  composer: { display: "flex", gap: 8, padding: 12, borderTop: "1px solid #e5e7eb" },
  textarea: {
    flex: 1,
    resize: "none",
    padding: "8px 10px",
    border: "1px solid #d1d5db",
    borderRadius: 6,
    fontSize: 14,
    fontFamily: "inherit",
  },
  closed: { padding: 12, borderTop: "1px solid #e5e7eb" },
  visuallyHidden: {
    position: "absolute",
    width: 1,
    height: 1,
    overflow: "hidden",
    clip: "rect(0 0 0 0)",
    whiteSpace: "nowrap",
  },
};
