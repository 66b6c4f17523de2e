// What a plugin's sandboxed frame may ask the host's page to do (docs/frontend.md, "The bridge").
//
// The frame has no session of its own: the host's page sends its requests with the signed-in
// user's credentials (PlugdockProvider's fetch). So the page is the gate, and this is its rule: a frame may call its
// plugin's own backend routes (metadata backend.routes, minus any that would cover a core
// route: the server leaves those out of `api_routes`), GET the core reads its granted
// permissions allow (`core_reads`), and navigate to its own pages or the core's. Everything
// else is refused, with a reason for the plugin's console and the panel's log.

import { matchPath } from "./paths";

export interface BridgeGrant {
  pluginId: string;
  /** Patterns: "/api/v1/chat/*", "/api/v1/notes", "/api/v1/notes/{id}". */
  apiRoutes: string[];
  /** Exact core paths this plugin may GET. */
  coreReads: string[];
}

const METHODS: readonly string[] = ["GET", "POST", "PUT", "PATCH", "DELETE"];
/** Encoded separators or dots could mean another path to the server than to this check. */
const AMBIGUOUS = /%2f|%5c|%2e|\\|%00/i;

function patternMatches(pattern: string, path: string): boolean {
  if (pattern.endsWith("/*")) return path.startsWith(pattern.slice(0, -1));
  const want = pattern.split("/");
  const have = path.split("/");
  if (want.length !== have.length) return false;
  return want.every((part, i) => (/^\{[^}]*\}$/.test(part) ? have[i] !== "" : part === have[i]));
}

/** The request a frame may send as `method path`, as a same-origin path + query; or why not. */
export function checkCall(
  grant: BridgeGrant,
  method: unknown,
  path: unknown,
): { ok: true; target: string } | { ok: false; reason: string } {
  if (typeof method !== "string" || !METHODS.includes(method)) return { ok: false, reason: "unknown method" };
  if (typeof path !== "string" || path.length > 2000) return { ok: false, reason: "not a path" };
  if (!path.startsWith("/") || path.startsWith("//")) return { ok: false, reason: "only a path of the panel" };
  const raw = path.split(/[?#]/, 1)[0];
  let url: URL;
  try {
    url = new URL(path, window.location.origin);
  } catch {
    return { ok: false, reason: "not a path" };
  }
  // (window.location's origin only parses the path: the client prefixes the base URL.)
  // After parsing, the path must be exactly what was written: no "..", no encoded "/" or ".".
  if (url.origin !== window.location.origin || url.pathname !== raw || AMBIGUOUS.test(raw)) {
    return { ok: false, reason: "the path is not in its plain form" };
  }
  if (grant.apiRoutes.some((pattern) => patternMatches(pattern, url.pathname))) {
    return { ok: true, target: url.pathname + url.search };
  }
  if (method === "GET" && grant.coreReads.includes(url.pathname)) {
    return { ok: true, target: url.pathname + url.search };
  }
  return { ok: false, reason: "not one of its own routes, nor a core read its permissions grant" };
}

/** Whether a frame may send the host's page to `to`: one of its own pages, or a core page. */
export function checkNavigation(to: unknown, ownPages: string[], corePages: string[]): string | null {
  if (typeof to !== "string" || !to.startsWith("/") || to.startsWith("//") || to.includes("\\")) return null;
  let url: URL;
  try {
    url = new URL(to, window.location.origin);
  } catch {
    return null;
  }
  if (url.origin !== window.location.origin) return null;
  const path = url.pathname;
  const own = ownPages.some((pattern) => matchPath(pattern, path) !== null);
  if (!own && !corePages.includes(path.replace(/\/+$/, "") || "/")) return null;
  return path + url.search + url.hash;
}

/** The error a refused call rejects with in the frame (the frame logs it in the plugin's console). */
export function refusal(pluginId: string, method: unknown, path: unknown, reason: string): string {
  return `plugdock: the panel refused ${String(method)} ${String(path).slice(0, 200)} for the plugin ${pluginId}: ${reason}`;
}
