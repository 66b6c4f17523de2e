// plugdock's API as the host's frontend calls it: every request goes through the fetch the
// host gave PlugdockProvider (so it carries the host's own credentials), to the address where
// the host mounted plugdock. A state-changing request adds X-Plugdock-CSRF: 1, which
// plugdock's CookieCsrfMiddleware asks of every cookie-carrying POST/PUT/PATCH/DELETE (a
// cross-site form cannot send a custom header). An answer that is not 2xx rejects with
// ApiError, whose message is FastAPI's `detail` in words.
import type { components } from "./generated/openapi";

type Schemas = components["schemas"];

export type CatalogItem = Schemas["CatalogItem"];
export type InstalledPlugin = Schemas["InstalledPlugin"];
export type InstallResponse = Schemas["InstallResponse"];
export type UninstallResponse = Schemas["UninstallResponse"];
export type InstallPlan = Schemas["InstallPlan"];
export type Isolation = Schemas["Isolation"];
export type UpgradePlan = Schemas["UpgradePlan"];
export type UninstallPlan = Schemas["UninstallPlan"];
export type UpgradeResponse = Schemas["UpgradeResponse"];
export type ToggleResponse = Schemas["ToggleResponse"];
/** POST /upload: the install or upgrade response, and which of the two it was. */
export type UploadResponse = Schemas["UploadedInstall"] | Schemas["UploadedUpgrade"];
/** One entry of GET /api/v1/frontend/plugins. */
export type FrontendEntry = Schemas["FrontendPlugin"];
export type RefusedCall = Schemas["RefusedCall"];
export type Delivery = Schemas["DeliveryOut"];
export type DeliveryStatus = Delivery["status"];

/** The header plugdock asks of cookie-carrying state changes (embedding.py, CSRF_HEADER). */
export const CSRF_HEADER = "X-Plugdock-CSRF";

/** What the host gives to make a request: `window.fetch`'s shape. */
export type FetchLike = (url: string, init: RequestInit) => Promise<Response>;

export type Method = "GET" | "POST" | "PUT" | "PATCH" | "DELETE";

/** An answer that is not 2xx (or no answer: `status` 0), with the server's `detail`. */
export class ApiError extends Error {
  /** The HTTP status; 0 when plugdock could not be reached. */
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

interface ValidationIssue {
  loc?: (string | number)[];
  msg?: string;
}

/** A readable line from FastAPI's `detail` (a string, or a list of validation issues), or null. */
export function describeDetail(detail: unknown): string | null {
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return (detail as ValidationIssue[])
      .map((issue) => {
        const field = issue?.loc ? String(issue.loc[issue.loc.length - 1] ?? "") : "";
        return field ? `${field}: ${issue?.msg ?? "invalid"}` : (issue?.msg ?? "invalid");
      })
      .join("; ");
  }
  return null;
}

/** The message of anything thrown: an Error's message, or the value as text. */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The default fetch: the browser's, sending the host's cookies along. */
export const defaultFetch: FetchLike = (url, init) => window.fetch(url, { credentials: "include", ...init });

/** Header names a plugin's own headers (through the bridge) never set. */
const RESERVED_HEADERS = new Set([CSRF_HEADER.toLowerCase(), "x-csrf-token", "cookie", "authorization"]);

export interface PlugdockClient {
  /** Where plugdock is mounted ("" for the page's own origin), without a trailing slash. */
  baseUrl: string;
  /** One call: `body` is sent as JSON, a FormData as multipart. Resolves to the parsed JSON. */
  request: <T>(method: Method, path: string, body?: unknown, extra?: Record<string, string>) => Promise<T>;
}

export function createClient(baseUrl: string, fetchImpl: FetchLike): PlugdockClient {
  const base = baseUrl.replace(/\/+$/, "");
  async function request<T>(method: Method, path: string, body?: unknown, extra: Record<string, string> = {}): Promise<T> {
    const headers: Record<string, string> = { Accept: "application/json" };
    for (const [name, value] of Object.entries(extra)) {
      if (!RESERVED_HEADERS.has(name.toLowerCase())) headers[name] = String(value);
    }
    if (method !== "GET") headers[CSRF_HEADER] = "1";
    const init: RequestInit = { method, headers };
    if (body instanceof FormData) {
      init.body = body; // the browser sets the multipart Content-Type
    } else if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response: Response;
    try {
      response = await fetchImpl(base + path, init);
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
  return { baseUrl: base, request };
}

/** The installed plugins' UIs, and the bridge's calls. */
export function frontendApi(client: PlugdockClient) {
  const { request } = client;
  return {
    plugins: () => request<FrontendEntry[]>("GET", "/api/v1/frontend/plugins"),
    /** A call a plugin's frame asked for, once bridge.ts allowed it. */
    bridged: (method: Method, path: string, body: unknown, headers: Record<string, string>) =>
      request<unknown>(method, path, body, headers),
    /** plugdock's log line for a bridge call the frontend refused. */
    refused: (entry: RefusedCall) => request<null>("POST", "/api/v1/frontend/refused", entry),
  };
}

/** The marketplace: the catalog, what is installed, and the lifecycle calls. */
export function marketplaceApi(client: PlugdockClient) {
  const { request } = client;
  const id = encodeURIComponent;
  return {
    catalog: () => request<CatalogItem[]>("GET", "/api/v1/marketplace/plugins"),
    installed: () => request<InstalledPlugin[]>("GET", "/api/v1/marketplace/installed"),
    isolation: () => request<Isolation>("GET", "/api/v1/marketplace/isolation"),
    planInstall: (plugin: string) => request<InstallPlan>("GET", `/api/v1/marketplace/plan/install/${id(plugin)}`),
    planUpgrade: (plugin: string) => request<UpgradePlan>("GET", `/api/v1/marketplace/plan/upgrade/${id(plugin)}`),
    planUninstall: (plugin: string) =>
      request<UninstallPlan>("GET", `/api/v1/marketplace/plan/uninstall/${id(plugin)}`),
    install: (plugin: string) =>
      request<InstallResponse>("POST", "/api/v1/marketplace/install", {
        plugin_id: plugin,
      } satisfies Schemas["InstallRequest"]),
    /** `grant`: the permissions the admin confirmed beyond the current grant (else a 409 names them). */
    upgrade: (plugin: string, version: string | null = null, grant: string[] = []) =>
      request<UpgradeResponse>("POST", "/api/v1/marketplace/upgrade", {
        plugin_id: plugin,
        version,
        grant,
      } satisfies Schemas["UpgradeRequest"]),
    uninstall: (plugin: string, backup: boolean, force = false) =>
      request<UninstallResponse>(
        "DELETE",
        `/api/v1/marketplace/uninstall/${id(plugin)}?backup=${backup}&force=${force}`,
      ),
    setEnabled: (plugin: string, enabled: boolean) =>
      request<ToggleResponse>("POST", `/api/v1/marketplace/${enabled ? "enable" : "disable"}/${id(plugin)}`),
    upload: (file: File, grant: string[] = []) => {
      const form = new FormData();
      form.append("file", file, file.name);
      for (const permission of grant) form.append("grant", permission);
      return request<UploadResponse>("POST", "/api/v1/marketplace/upload", form);
    },
  };
}

/** Host events delivered to plugins: the deliveries page and its retry. */
export function eventsApi(client: PlugdockClient) {
  const { request } = client;
  return {
    deliveries: (status: DeliveryStatus | null = null) =>
      request<Delivery[]>("GET", `/api/v1/events/deliveries${status ? `?status=${status}` : ""}`),
    retry: (id: number) => request<Schemas["RetryOut"]>("POST", `/api/v1/events/deliveries/${id}/retry`),
  };
}

export type MarketplaceApi = ReturnType<typeof marketplaceApi>;
export type EventsApi = ReturnType<typeof eventsApi>;
export type FrontendApi = ReturnType<typeof frontendApi>;
