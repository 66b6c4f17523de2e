// The panel's JSON API for plugin UIs: fetch with the session cookie, the CSRF header on
// changes, errors as ApiError. (The shell has its own client, web/src/api.ts.)
//
// The session token lives in an HttpOnly cookie that no script can read (set by
// POST /api/v1/auth/session). Requests that change something also send the readable
// "plugdock_csrf" cookie's value as X-CSRF-Token, which the server checks.

export const CSRF_COOKIE = "plugdock_csrf";
export const CSRF_HEADER = "X-CSRF-Token";

/** An answer that is not 2xx (or no answer: `status` 0), with the server's `detail`. */
export class ApiError extends Error {
  /** The HTTP status; 0 when the panel could not be reached. */
  readonly status: number;
  /** FastAPI's `detail`: a string, a list of validation issues, or whatever the route sent. */
  readonly detail: unknown;

  constructor(status: number, detail: unknown, fallback: string) {
    super(describeDetail(detail) ?? fallback);
    this.name = "ApiError";
    this.status = status;
    this.detail = detail;
  }
}

/** One issue of a FastAPI validation error (HTTP 422). */
export interface ValidationIssue {
  loc?: (string | number)[];
  msg?: string;
}

/**
 * A readable line from FastAPI's `detail` (a string, or a list of validation issues), or null.
 * `label` renames a field (the last part of an issue's `loc`), e.g. `{guest_email: "Email"}`.
 */
export function describeDetail(detail: unknown, label: Record<string, string> = {}): string | null {
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return (detail as ValidationIssue[])
      .map((issue) => {
        const field = issue?.loc ? String(issue.loc[issue.loc.length - 1] ?? "") : "";
        const name = label[field] ?? field;
        return name ? `${name}: ${issue?.msg ?? "invalid"}` : (issue?.msg ?? "invalid");
      })
      .join("; ");
  }
  return null;
}

/** The message of anything thrown: an Error's message, or the value as text. */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The CSRF token of the current session (a readable cookie), or null when signed out. */
export function csrfToken(): string | null {
  if (typeof document === "undefined") return null;
  let cookies: string;
  try {
    cookies = document.cookie;
  } catch {
    return null; // a sandboxed frame (opaque origin): no cookies at all, by design
  }
  for (const part of cookies.split(";")) {
    const [name, ...value] = part.trim().split("=");
    if (name === CSRF_COOKIE) return decodeURIComponent(value.join("="));
  }
  return null;
}

export type Method = "GET" | "POST" | "PUT" | "PATCH" | "DELETE";

export interface RequestOptions {
  /** JSON-encoded, except FormData (multipart; the browser sets its Content-Type). */
  body?: unknown;
  /** Extra headers, e.g. a plugin's own token. They cannot replace the CSRF header. */
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

/** Whether a 401 means "the session ended" (the shell then shows the sign-in page). */
let signedIn = false;
let onUnauthorized: () => void = () => {};

/**
 * How a request leaves a plugin's sandboxed frame: over the bridge to the shell, which sends
 * it with the session (or refuses it). Rejects with ApiError like a direct request.
 * @internal
 */
export type Transport = (method: Method, path: string, options: RequestOptions) => Promise<unknown>;
let transport: Transport | null = null;

/**
 * The shell's hooks into the plugins' client: whether a 401 may mean the session ended, and
 * what to do then.
 * @internal
 */
export const clientHooks = {
  setSignedIn(value: boolean): void {
    signedIn = value;
  },
  setUnauthorizedHandler(handler: () => void): void {
    onUnauthorized = handler;
  },
  /** Inside a plugin's frame: send every request through the shell's bridge. */
  setTransport(next: Transport | null): void {
    transport = next;
  },
};

/**
 * Call the panel's API as the signed-in user: `path` is absolute ("/api/v1/..."); resolves
 * to the parsed JSON (null for an empty answer), rejects with ApiError.
 */
export async function request<T = unknown>(method: Method, path: string, options: RequestOptions = {}): Promise<T> {
  if (transport) return (await transport(method, path, options)) as T;
  const headers: Record<string, string> = { Accept: "application/json", ...options.headers };
  const csrf = method === "GET" ? null : csrfToken();
  if (csrf) headers[CSRF_HEADER] = csrf;
  const init: RequestInit = { method, headers, credentials: "same-origin", signal: options.signal };
  const { body } = options;
  if (body instanceof FormData) {
    init.body = body;
  } else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response: Response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    if (options.signal?.aborted) throw error; // the caller's own abort, not a network problem
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

/** Shorthands for `request`; also what the shell hands to plugin pages as `props.api`. */
export interface PlugdockApi {
  get<T = unknown>(path: string, options?: Omit<RequestOptions, "body">): Promise<T>;
  post<T = unknown>(path: string, body?: unknown, options?: Omit<RequestOptions, "body">): Promise<T>;
  put<T = unknown>(path: string, body?: unknown, options?: Omit<RequestOptions, "body">): Promise<T>;
  patch<T = unknown>(path: string, body?: unknown, options?: Omit<RequestOptions, "body">): Promise<T>;
  delete<T = unknown>(path: string, options?: Omit<RequestOptions, "body">): Promise<T>;
}

export const api: PlugdockApi = {
  get: (path, options) => request("GET", path, options),
  post: (path, body, options) => request("POST", path, { ...options, body }),
  put: (path, body, options) => request("PUT", path, { ...options, body }),
  patch: (path, body, options) => request("PATCH", path, { ...options, body }),
  delete: (path, options) => request("DELETE", path, options),
};
