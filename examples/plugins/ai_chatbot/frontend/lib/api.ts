// The chatbot's endpoints and response types, on the panel's SDK.
//
// Requests go through @plugdock/sdk's `request` (the panel's one client: the session
// cookie, the CSRF header on changes, ApiError with the server's detail). Admin pages call
// the admin routes as the signed-in user; the visitor widget calls the public routes with
// the chat session's own X-Chat-Token.
import { ApiError, describeDetail, errorMessage, request } from "@plugdock/sdk";

export const CHAT_API = "/api/v1/chat";

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

/** The visitor form's field names, for validation errors ("Email: …" rather than "guest_email: …"). */
const FIELD_LABELS: Record<string, string> = {
  guest_name: "Name",
  guest_email: "Email",
  guest_phone: "Phone",
  content: "Message",
};

/** An error as the visitor should read it. */
export function chatErrorText(error: unknown): string {
  if (error instanceof ApiError) return describeDetail(error.detail, FIELD_LABELS) ?? error.message;
  return errorMessage(error);
}

/** The chat session's proof of ownership, sent with every visitor call. */
export function chatToken(token: string): Record<string, string> {
  return { "X-Chat-Token": token };
}

/** The visitor's side of the API (public endpoints, X-Chat-Token). */
export function chatClient(apiBase: string = CHAT_API) {
  const base = apiBase.replace(/\/+$/, "");
  return {
    start: (body: SessionStart) => request<SessionStarted>("POST", `${base}/sessions`, { body }),
    send: (sessionId: number, token: string, content: string) =>
      request<ChatReply>("POST", `${base}/sessions/${sessionId}/messages`, {
        body: { content },
        headers: chatToken(token),
      }),
    transcript: (sessionId: number, token: string) =>
      request<Transcript>("GET", `${base}/sessions/${sessionId}/messages`, { headers: chatToken(token) }),
  };
}

export function formatTime(iso: string): string {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}
