// The shell's client of the panel's API: every call the shell makes to /api/... is a function
// here, its request and response types named from the panel's OpenAPI document
// (generated/openapi.ts, made by scripts/openapi_types.py, so they cannot drift from the server).
//
// The session is an HttpOnly cookie no script can read (set by POST /api/v1/auth/session).
// A request that changes something also sends the session's CSRF token (a readable cookie) as
// X-CSRF-Token, which the server checks. An answer that is not 2xx rejects with ApiError, whose
// message is FastAPI's `detail` in words; a 401 while signed in calls the handler auth.tsx sets.
//
// Plugin UIs have a client of their own, @plugdock/sdk's (src/sdk/client.ts): the two are kept
// apart (web/eslint.config.js). All this module takes from the SDK is how to read the CSRF
// token: that cookie belongs to the session the shell and every plugin page share, and its
// name stays in one bundle, /static/sdk.js (tests/browser/test_browser_sdk.py: app.js has no copy).
import { CSRF_HEADER, csrfToken } from "@plugdock/sdk";

import { ApiError, errorMessage } from "@plugdock/react";
import type { components } from "@plugdock/react/src/generated/openapi";

type Schemas = components["schemas"];

export type User = Schemas["UserOut"];
export type AuditEntry = Schemas["AuditEntryOut"];
export type Dashboard = Schemas["DashboardOut"];

// -- errors ----------------------------------------------------------------------------------

// The error type and its words are @plugdock/react's: the shell and its screens raise one kind.
export { ApiError, errorMessage };

// -- the session's end ------------------------------------------------------------------------

/** Whether a 401 means "the session ended" (then the handler is called). */
let signedIn = false;
let onUnauthorized: () => void = () => {};

/** auth.tsx: true while a user is signed in, so a 401 then may mean the session ended. */
export function setSignedIn(value: boolean): void {
  signedIn = value;
}

/** auth.tsx: what a 401 while signed in calls (it asks whether the session really ended). */
export function setUnauthorizedHandler(handler: () => void): void {
  onUnauthorized = handler;
}

// -- requests --------------------------------------------------------------------------------

type Method = "GET" | "POST" | "PUT" | "PATCH" | "DELETE";

/**
 * One call as the signed-in user: `body` is sent as JSON, a FormData as multipart; `extra`
 * headers (a plugin's own, through the bridge) never replace the CSRF header. Resolves to the
 * parsed JSON (null for an empty answer), rejects with ApiError.
 */
async function request<T>(method: Method, path: string, body?: unknown, extra: Record<string, string> = {}): Promise<T> {
  const headers: Record<string, string> = { Accept: "application/json" };
  for (const [name, value] of Object.entries(extra)) {
    if (name.toLowerCase() !== CSRF_HEADER.toLowerCase()) headers[name] = String(value);
  }
  const csrf = method === "GET" ? null : csrfToken();
  if (csrf) headers[CSRF_HEADER] = csrf;
  const init: RequestInit = { method, headers, credentials: "same-origin" };
  if (body instanceof FormData) {
    init.body = body; // the browser sets the multipart Content-Type
  } else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response: Response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError(0, null, "Cannot reach the panel. Check your connection and try again.");
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
    if (response.status === 401 && signedIn) onUnauthorized();
    const detail = data && typeof data === "object" && "detail" in data ? data.detail : data;
    throw new ApiError(response.status, detail, `${response.status} ${response.statusText}`);
  }
  return data as T;
}

// -- the endpoints ---------------------------------------------------------------------------

/** Sign-in for the web UI: an HttpOnly session cookie, never a token in the page. */
export const session = {
  signIn: (username: string, password: string) =>
    request<Schemas["SessionResponse"]>("POST", "/api/v1/auth/session", {
      username,
      password,
    } satisfies Schemas["LoginRequest"]),
  signOut: () => request<null>("POST", "/api/v1/auth/logout"),
  me: () => request<User>("GET", "/api/v1/auth/me"),
};

/** Accounts (admins): list, create, change role or active flag. */
export const accounts = {
  list: () => request<User[]>("GET", "/api/v1/users"),
  create: (username: string, password: string, role: User["role"]) =>
    request<User>("POST", "/api/v1/users", { username, password, role } satisfies Schemas["UserCreate"]),
  update: (id: number, change: Schemas["UserUpdate"]) => request<User>("PATCH", `/api/v1/users/${id}`, change),
};

export const dashboard = {
  get: () => request<Dashboard>("GET", "/api/v1/dashboard"),
};

/**
 * The fetch @plugdock/react calls the panel with (its marketplace screens, plugin manifest and
 * the frames' bridged requests): the session cookie, the session's CSRF token on every change
 * (never one a plugin's own headers name), and the shell's handling of a 401 while signed in.
 */
export async function panelFetch(url: string, init: RequestInit): Promise<Response> {
  const headers = new Headers(init.headers);
  headers.delete(CSRF_HEADER);
  const csrf = (init.method ?? "GET").toUpperCase() === "GET" ? null : csrfToken();
  if (csrf) headers.set(CSRF_HEADER, csrf);
  const response = await fetch(url, { ...init, headers, credentials: "same-origin" });
  if (response.status === 401 && signedIn) onUnauthorized();
  return response;
}
