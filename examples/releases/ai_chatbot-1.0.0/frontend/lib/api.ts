// HTTP helpers and response types shared by the chatbot's pages and components.
//
// Two kinds of caller:
// - admin pages get a `PlugdockApi` from the host (`props.api`), which sends the admin's
//   session; without one we fall back to `fetch` with the panel's session cookie (HttpOnly:
//   the browser sends it, no script reads it) and its readable CSRF token.
// - the visitor widget talks to the public endpoints with the session's X-Chat-Token.

/** What the host hands to plugin pages as `props.api`. Paths are absolute ("/api/v1/..."). */
export interface PlugdockApi {
  get<T>(path: string): Promise<T>;
  post<T>(path: string, body?: unknown): Promise<T>;
}

export const CHAT_API = "/api/v1/chat";
/** The panel's readable CSRF cookie and the header unsafe requests must echo it in. */
export const CSRF_COOKIE = "plugdock_csrf";
export const CSRF_HEADER = "X-CSRF-Token";

export type Sender = "guest" | "bot";
export type SessionStatus = "open" | "closed";

export interface MessageOut {
  id: number;
  session_id: number;
  sender: Sender;
  content: string;
  created_at: string;
}

export interface SessionOut {
  id: number;
  guest_name: string;
  guest_email: string;
  guest_phone: string | null;
  status: SessionStatus;
  created_at: string;
  updated_at: string;
}

export interface SessionSummary extends SessionOut {
  message_count: number;
}

export interface SessionPage {
  items: SessionSummary[];
  total: number;
  limit: number;
  offset: number;
}

export interface SessionDetail extends SessionOut {
  messages: MessageOut[];
}

export interface SessionStart {
  guest_name: string;
  guest_email: string;
  guest_phone?: string | null;
}

export interface SessionStarted {
  session_id: number;
  token: string;
  status: SessionStatus;
  created_at: string;
  greeting: MessageOut;
}

export interface Transcript {
  session_id: number;
  status: SessionStatus;
  messages: MessageOut[];
}

export interface ChatReply {
  message: MessageOut;
  reply: MessageOut;
}

/** An HTTP error with the server's `detail`, made readable. */
export class ApiError extends Error {
  readonly status: number;
  readonly detail: unknown;

  constructor(status: number, detail: unknown, fallback: string) {
    super(describeDetail(detail) ?? fallback);
    this.name = "ApiError";
    this.status = status;
    this.detail = detail;
  }
}

interface ValidationIssue {
  loc?: (string | number)[];
  msg?: string;
}

const FIELD_LABELS: Record<string, string> = {
  guest_name: "Name",
  guest_email: "Email",
  guest_phone: "Phone",
  content: "Message",
};

function describeDetail(detail: unknown): string | null {
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    // FastAPI 422: [{loc: ["body", "guest_email"], msg: "..."}]
    return (detail as ValidationIssue[])
      .map((issue) => {
        const field = String(issue.loc?.[issue.loc.length - 1] ?? "");
        const label = FIELD_LABELS[field] ?? field;
        return label ? `${label}: ${issue.msg ?? "invalid"}` : (issue.msg ?? "invalid");
      })
      .join("; ");
  }
  return null;
}

/** fetch + JSON, throwing ApiError with the server's detail on a non-2xx answer. */
export async function requestJson<T>(
  method: "GET" | "POST",
  url: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<T> {
  const init: RequestInit = {
    method,
    headers: { Accept: "application/json", ...headers },
    credentials: "same-origin",
  };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    (init.headers as Record<string, string>)["Content-Type"] = "application/json";
  }
  let response: Response;
  try {
    response = await fetch(url, init);
  } catch {
    throw new ApiError(0, null, "Cannot reach the server. Check your connection and try again.");
  }
  const text = await response.text();
  let data: unknown = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = text;
    }
  }
  if (!response.ok) {
    const detail = data && typeof data === "object" && "detail" in data ? data.detail : data;
    throw new ApiError(response.status, detail, `${response.status} ${response.statusText}`);
  }
  return data as T;
}

function csrfToken(): string | null {
  if (typeof document === "undefined") return null;
  for (const part of document.cookie.split(";")) {
    const [name, ...value] = part.trim().split("=");
    if (name === CSRF_COOKIE) return decodeURIComponent(value.join("="));
  }
  return null;
}

/** The fallback admin API: fetch with the panel's session cookie (and CSRF token for POST). */
export function fetchApi(): PlugdockApi {
  const csrf = (): Record<string, string> => {
    const token = csrfToken();
    return token ? { [CSRF_HEADER]: token } : {};
  };
  return {
    get: <T>(path: string) => requestJson<T>("GET", path),
    post: <T>(path: string, body?: unknown) => requestJson<T>("POST", path, body, csrf()),
  };
}

/** The visitor's side of the API (public endpoints, X-Chat-Token). */
export function chatClient(apiBase: string = CHAT_API) {
  const base = apiBase.replace(/\/+$/, "");
  const withToken = (token: string) => ({ "X-Chat-Token": token });
  return {
    start: (body: SessionStart) => requestJson<SessionStarted>("POST", `${base}/sessions`, body),
    send: (sessionId: number, token: string, content: string) =>
      requestJson<ChatReply>(
        "POST",
        `${base}/sessions/${sessionId}/messages`,
        { content },
        withToken(token),
      ),
    transcript: (sessionId: number, token: string) =>
      requestJson<Transcript>(
        "GET",
        `${base}/sessions/${sessionId}/messages`,
        undefined,
        withToken(token),
      ),
  };
}

export function formatTime(iso: string): string {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}
