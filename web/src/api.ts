// The panel's JSON API: fetch with the session cookie, errors as ApiError.
//
// The session token lives in an HttpOnly cookie that no script can read (set by
// POST /api/v1/auth/session). Requests that change something also send the readable
// "plugdock_csrf" cookie's value as X-CSRF-Token, which the server checks.

export const CSRF_COOKIE = "plugdock_csrf";
export const CSRF_HEADER = "X-CSRF-Token";
/** Where older shells kept the bearer token; removed on start (see auth.tsx). */
export const LEGACY_TOKEN_KEY = "plugdock_token";

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

/** A readable line from FastAPI's `detail` (a string, or a list of validation issues). */
export function describeDetail(detail: unknown): string | null {
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return detail
      .map((issue: { loc?: unknown[]; msg?: string }) => {
        const field = issue.loc ? String(issue.loc[issue.loc.length - 1] ?? "") : "";
        return field ? `${field}: ${issue.msg ?? "invalid"}` : (issue.msg ?? "invalid");
      })
      .join("; ");
  }
  return null;
}

/** The CSRF token of the current session (a readable cookie), or null when signed out. */
export function csrfToken(): string | null {
  for (const part of document.cookie.split(";")) {
    const [name, ...value] = part.trim().split("=");
    if (name === CSRF_COOKIE) return decodeURIComponent(value.join("="));
  }
  return null;
}

/** Whether a session is believed to be active (so a 401 means it ended). */
let signedIn = false;
export function setSignedIn(value: boolean): void {
  signedIn = value;
}

/** Called when the server answers 401 while signed in (expired, signed out elsewhere, revoked). */
let onUnauthorized: () => void = () => {};
export function setUnauthorizedHandler(handler: () => void): void {
  onUnauthorized = handler;
}

export type Method = "GET" | "POST" | "PUT" | "PATCH" | "DELETE";

export async function request<T>(method: Method, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { Accept: "application/json" };
  const csrf = method === "GET" ? null : csrfToken();
  if (csrf) headers[CSRF_HEADER] = csrf;
  const init: RequestInit = { method, headers, credentials: "same-origin" };
  if (body instanceof FormData) {
    init.body = body; // multipart: the browser sets Content-Type with its boundary
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

/** The helper the shell hands to plugin pages and widgets as `props.api`. */
export interface PlugdockApi {
  get<T>(path: string): Promise<T>;
  post<T>(path: string, body?: unknown): Promise<T>;
  put<T>(path: string, body?: unknown): Promise<T>;
  patch<T>(path: string, body?: unknown): Promise<T>;
  delete<T>(path: string): Promise<T>;
}

export const api: PlugdockApi = {
  get: (path) => request("GET", path),
  post: (path, body) => request("POST", path, body),
  put: (path, body) => request("PUT", path, body),
  patch: (path, body) => request("PATCH", path, body),
  delete: (path) => request("DELETE", path),
};

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

// -- the panel's own endpoints ---------------------------------------------------------------

export interface User {
  id: number;
  username: string;
  role: "admin" | "user";
  is_active: boolean;
  created_at: string;
}

/** Sign-in for the web UI: an HttpOnly session cookie, never a token in the page. */
export const session = {
  signIn: (username: string, password: string) =>
    request<{ csrf_token: string; expires_in: number }>("POST", "/api/v1/auth/session", { username, password }),
  signOut: () => request<null>("POST", "/api/v1/auth/logout"),
  me: () => request<User>("GET", "/api/v1/auth/me"),
};

/** Accounts (admins): list, create, change role or active flag. */
export const accounts = {
  list: () => request<User[]>("GET", "/api/v1/users"),
  create: (username: string, password: string, role: User["role"]) =>
    request<User>("POST", "/api/v1/users", { username, password, role }),
  update: (id: number, change: { role?: User["role"]; is_active?: boolean }) =>
    request<User>("PATCH", `/api/v1/users/${id}`, change),
};

export interface AuditEntry {
  id: number;
  at: string;
  actor: string | null;
  action: string;
  plugin_id: string | null;
  version: string | null;
  detail: unknown;
}

export interface Dashboard {
  user: User;
  users: number;
  plugins_installed: number;
  plugin_generation: number;
  recent_activity: AuditEntry[] | null;
}

export interface CatalogItem {
  id: string;
  name: string;
  description: string;
  author: string;
  category: string;
  price: number;
  icon: string;
  versions: string[];
  latest: string;
  installed: boolean;
  installed_version: string | null;
  state: string | null;
  /** null when not installed. */
  enabled?: boolean | null;
  /** The highest catalog version above the installed one, or null. */
  update_available?: string | null;
  /** Whether this core can take that update (requires, dependency ranges). */
  update_compatible?: boolean;
  update_problem?: string | null;
}

export interface InstalledPlugin {
  id: string;
  name: string;
  version: string;
  installed_at: string;
  installed_by: string | null;
  signer: string | null;
  tables: string[];
  state: string;
  routes: string[];
  error: string | null;
  enabled?: boolean;
  update_available?: string | null;
  update_compatible?: boolean;
  update_problem?: string | null;
}

export interface InstallResponse {
  message: string;
  plugin_id: string;
  name: string;
  version: string;
  tables: string[];
  routes: string[];
  frontend_routes: string[];
  warnings?: string[];
  /** Every plugin this install put in, its dependencies first. */
  installed?: string[];
}

export interface UninstallResponse {
  message: string;
  plugin_id: string;
  version: string;
  tables_dropped: string[];
  routes_removed: string[];
  warnings: string[];
  /** The backup's file name (instance/backups/), or null when none was written. */
  backup?: string | null;
}

export interface InstallPlan {
  plugin_id: string;
  version: string;
  /** Dependencies first, the requested plugin last. */
  steps: { plugin_id: string; version: string; reason: string }[];
}

export interface UpgradePlan {
  plugin_id: string;
  from_version: string;
  version: string;
  /** The new version's CHANGELOG.md, as text (never HTML). */
  changelog: string | null;
  steps: string[];
  compatible: boolean;
  problem: string | null;
}

export interface UninstallPlan {
  plugin_id: string;
  version: string;
  tables: { name: string; rows: number }[];
  dependents: string[];
  backup: boolean;
}

export interface UpgradeResponse {
  message: string;
  plugin_id: string;
  name: string;
  from_version: string;
  version: string;
  steps: string[];
  tables: string[];
  routes: string[];
  frontend_routes: string[];
  warnings?: string[];
}

export interface ToggleResponse {
  message: string;
  plugin_id: string;
  enabled: boolean;
}

/** POST /upload: the install or upgrade response, and which of the two it was. */
export type UploadResponse = (InstallResponse | UpgradeResponse) & { operation: "install" | "upgrade" };

/** The marketplace's lifecycle calls (issue 8). */
export const marketplace = {
  planInstall: (id: string) => api.get<InstallPlan>(`/api/v1/marketplace/plan/install/${encodeURIComponent(id)}`),
  planUpgrade: (id: string) => api.get<UpgradePlan>(`/api/v1/marketplace/plan/upgrade/${encodeURIComponent(id)}`),
  planUninstall: (id: string) =>
    api.get<UninstallPlan>(`/api/v1/marketplace/plan/uninstall/${encodeURIComponent(id)}`),
  install: (id: string) => api.post<InstallResponse>("/api/v1/marketplace/install", { plugin_id: id }),
  upgrade: (id: string, version: string | null = null) =>
    api.post<UpgradeResponse>("/api/v1/marketplace/upgrade", { plugin_id: id, version }),
  uninstall: (id: string, backup: boolean) =>
    api.delete<UninstallResponse>(`/api/v1/marketplace/uninstall/${encodeURIComponent(id)}?backup=${backup}`),
  setEnabled: (id: string, enabled: boolean) =>
    api.post<ToggleResponse>(`/api/v1/marketplace/${enabled ? "enable" : "disable"}/${encodeURIComponent(id)}`),
  upload: (file: File) => {
    const form = new FormData();
    form.append("file", file, file.name);
    return api.post<UploadResponse>("/api/v1/marketplace/upload", form);
  },
};

/** One entry of GET /api/v1/frontend/plugins. */
export interface FrontendEntry {
  id: string;
  name: string;
  version: string;
  operation_id: string;
  bundle_url: string;
}

export function formatDate(iso: string): string {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}
