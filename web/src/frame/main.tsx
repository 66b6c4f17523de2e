// The runtime of a plugin's sandboxed frame (/plugins-ui/<id>/<operation>/frame.html, built
// as /static/frame.js): imports the plugin's bundle, says hello to the shell, and renders the
// page or widget the shell names. The plugin's @plugdock/sdk is the frame's own copy, wired to
// the shell over the MessagePort: requests, notices and navigation go to the shell, which
// decides; the user and the current route come from it.
//
// The frame has an opaque origin (sandbox without allow-same-origin): no cookies, no storage,
// no access to the shell's DOM, and its policy (connect-src 'none') forbids requests of its
// own. Nothing here is a security boundary: the shell's checks are (packages/react/src/bridge.ts).
import {
  type AddonConfig,
  ApiError,
  type PluginComponentProps,
  type RequestOptions,
  type SdkUser,
  api,
  clientHooks,
  setCurrentUser,
  setNoticeSink,
} from "@plugdock/sdk";
import * as React from "react";
import { flushSync } from "react-dom";
import { createRoot } from "react-dom/client";

// From the package's sources (not its index): the frame bundles only what it uses.
import { ErrorBoundary } from "@plugdock/react/src/ErrorBoundary";
import {
  CONNECT,
  type ConnectMessage,
  type FrameKind,
  type FrameMessage,
  type FrameRoute,
  HELLO,
  type PlugdockUser,
  type ShellMessage,
  type WireBody,
} from "@plugdock/react/src/protocol";

/** The SDK's user type says a numeric id; a host's HostUser may have a text one: passed as given. */
const sdkUser = (user: PlugdockUser | null) => user as SdkUser | null;

// /plugins-ui/<id>/<operation>/frame.html?kind=page|widget&index=N
const [, , pluginId = "", operationId = ""] = window.location.pathname.split("/");
const query = new URLSearchParams(window.location.search);
const asked = query.get("kind");
const kind: FrameKind = asked === "widget" || asked === "describe" ? asked : "page";
const widgetIndex = Number(query.get("index") ?? "0");
document.documentElement.classList.add("plugdock-frame", `plugdock-frame-${kind}`);

// Start loading the bundle at once, while the shell answers the hello.
const bundle = import(/* webpackIgnore: true */ `/plugins/${pluginId}/${operationId}/addon.js`) as Promise<{
  default?: AddonConfig;
}>;

let port: MessagePort | null = null;
let nextId = 1;
const pending = new Map<number, { resolve: (value: unknown) => void; reject: (error: unknown) => void }>();

function send(message: FrameMessage): void {
  port?.postMessage(message);
}

function wireBody(body: unknown): WireBody {
  if (body === undefined) return null;
  if (body instanceof FormData) {
    const form: [string, string | File][] = [];
    body.forEach((value, name) => form.push([name, value]));
    return { form };
  }
  return { json: body };
}

clientHooks.setTransport((method, path, options: RequestOptions) => {
  if (!port) return Promise.reject(new ApiError(0, null, "The panel has not connected this frame yet."));
  const id = nextId++;
  return new Promise((resolve, reject) => {
    pending.set(id, { resolve, reject });
    options.signal?.addEventListener("abort", () => {
      if (pending.delete(id)) reject(new DOMException("Aborted", "AbortError"));
    });
    send({ type: "request", id, method, path, body: wireBody(options.body), headers: { ...options.headers } });
  });
});
setNoticeSink((text, kind) => send({ type: "notify", text, kind }));

const navigate = (to: string) => send({ type: "navigate", to: String(to) });

interface State {
  name: string;
  config: AddonConfig | null;
  user: SdkUser | null;
  route: FrameRoute | null;
  error: string | null;
}

let state: State = { name: pluginId, config: null, user: null, route: null, error: null };
const root = document.getElementById("root");
if (!root) throw new Error("#root is missing from frame.html");
const reactRoot = createRoot(root);

/** What the shell needs to know without running the plugin's code: nav, routes, widgets. */
function describe(config: AddonConfig): unknown {
  const component = (value: unknown) =>
    typeof value === "function" || (typeof value === "object" && value !== null && "$$typeof" in value);
  return {
    nav: config.nav ?? [],
    routes: (config.routes ?? []).map((route) => ({
      path: route?.path,
      adminOnly: Boolean(route?.adminOnly),
      title: route?.title,
      component: component(route?.component),
    })),
    widgets: (config.widgets ?? []).map(component),
  };
}

function render(): void {
  const { name, config, user, route, error } = state;
  if (kind === "describe") {
    if (!port) return;
    if (error) send({ type: "describe-error", message: error });
    else if (config) send({ type: "describe", config: describe(config) });
    return;
  }
  if (error) {
    reactRoot.render(
      <p className="notice notice-error" role="alert">
        The UI of this plugin could not be loaded: {error}
      </p>,
    );
    return;
  }
  if (!config || !port) return;
  const common: Omit<PluginComponentProps, "path" | "params"> = { api, user, navigate, pluginId };
  let element: React.ReactNode = null;
  if (kind === "page" && route) {
    const def = config.routes?.[route.index];
    if (!def) return;
    const Page = def.component;
    element = (
      <ErrorBoundary key={`${def.path}#${route.visit}`} label={`The page of ${name}`}>
        <React.Suspense fallback={<p role="status">Loading…</p>}>
          <Page {...common} path={route.path} params={route.params} />
        </React.Suspense>
      </ErrorBoundary>
    );
  } else if (kind === "widget") {
    const Widget = config.widgets?.[widgetIndex];
    if (!Widget) return;
    element = (
      <ErrorBoundary label={`A widget of ${name}`} quiet>
        <Widget {...common} path={route?.path ?? "/"} params={{}} />
      </ErrorBoundary>
    );
  }
  reactRoot.render(<React.StrictMode>{element}</React.StrictMode>);
}

function onShellMessage(event: MessageEvent<ShellMessage>): void {
  const message = event.data;
  if (message.type === "reply") {
    const waiting = pending.get(message.id);
    if (!waiting) return;
    pending.delete(message.id);
    if (message.ok) waiting.resolve(message.data);
    else {
      if (message.status === 403 && typeof message.detail === "string" && message.detail.startsWith("plugdock:")) {
        console.error(message.detail); // refused by the shell: said where the plugin's author looks
      }
      waiting.reject(new ApiError(message.status, message.detail, message.message));
    }
  } else if (message.type === "route") {
    state = { ...state, route: message.route };
    flushSync(render); // now, not on the next scheduler turn: the shell is showing this page
  } else if (message.type === "user") {
    setCurrentUser(sdkUser(message.user));
    state = { ...state, user: sdkUser(message.user) };
    render();
  }
}

/** Report what the frame needs: a page its height, a widget the box its content covers. */
function observeSize(): void {
  const report = () => {
    if (kind === "page") {
      send({ type: "size", height: Math.ceil(document.documentElement.getBoundingClientRect().height) });
      return;
    }
    let left = Infinity;
    let top = Infinity;
    let right = -Infinity;
    let bottom = -Infinity;
    for (const element of root?.querySelectorAll("*") ?? []) {
      const box = element.getBoundingClientRect();
      if (box.width === 0 || box.height === 0) continue;
      left = Math.min(left, box.left);
      top = Math.min(top, box.top);
      right = Math.max(right, box.right);
      bottom = Math.max(bottom, box.bottom);
    }
    if (left === Infinity) send({ type: "region", left: 0, top: 0, right: 0, bottom: 0 });
    else send({ type: "region", left, top, right, bottom });
  };
  let queued = false;
  const schedule = () => {
    if (queued) return;
    queued = true;
    // Not requestAnimationFrame: Chromium throttles the rendering of a cross-origin frame it
    // deems hidden (a widget clipped to nothing yet), so a frame callback might never come.
    window.setTimeout(() => {
      queued = false;
      report();
    }, 0);
  };
  new ResizeObserver(schedule).observe(document.documentElement);
  new MutationObserver(schedule).observe(document.body, { subtree: true, childList: true, attributes: true });
  window.addEventListener("resize", schedule);
  schedule();
}

window.addEventListener("message", (event: MessageEvent<ConnectMessage>) => {
  // Only the shell (this frame's parent) hands out the port, and only once.
  if (port || event.source !== window.parent || event.data?.type !== CONNECT || !event.ports[0]) return;
  port = event.ports[0];
  port.onmessage = onShellMessage;
  setCurrentUser(sdkUser(event.data.user));
  state = { ...state, name: event.data.name, user: sdkUser(event.data.user), route: event.data.route };
  if (kind !== "describe") observeSize();
  render();
});

bundle.then(
  (module) => {
    const config = (module.default ?? module) as AddonConfig;
    state = { ...state, config };
    render();
  },
  (error: unknown) => {
    console.error(`plugdock: the UI of ${pluginId} could not be loaded`, error);
    state = { ...state, error: error instanceof Error ? error.message : String(error) };
    render();
  },
);

window.parent.postMessage({ type: HELLO }, "*");
