// Ratings (1.1.0): a visitor rates their conversation; admins see the stars and the comment.
// Kept apart from api.ts so the version's additions stay in one place.
import { request } from "@plugdock/sdk";

import { CHAT_API, type SessionDetail, type SessionPage, type SessionSummary, chatToken } from "./api";

export const MAX_COMMENT_LENGTH = 500;

export interface RatingIn {
  stars: number;
  comment?: string | null;
}

export interface RatingOut {
  session_id: number;
  stars: number;
  comment: string | null;
  created_at: string;
}

/** What 1.1.0 adds to the sessions admins read. */
export interface RatedSession {
  rating?: number | null;
  feedback?: RatingOut | null;
}

export type RatedSummary = SessionSummary & RatedSession;
export type RatedPage = Omit<SessionPage, "items"> & { items: RatedSummary[] };
export type RatedDetail = SessionDetail & RatedSession;

/** POST the visitor's rating (the session's X-Chat-Token proves it is theirs). */
export function rateSession(
  sessionId: number,
  token: string,
  body: RatingIn,
  apiBase: string = CHAT_API,
): Promise<RatingOut> {
  const base = apiBase.replace(/\/+$/, "");
  return request<RatingOut>("POST", `${base}/sessions/${sessionId}/rating`, { body, headers: chatToken(token) });
}

/** "★★★★☆" for 4 stars; "" for none. */
export function starsText(stars: number | null | undefined): string {
  if (!stars) return "";
  const n = Math.max(0, Math.min(5, Math.round(stars)));
  return "★".repeat(n) + "☆".repeat(5 - n);
}
