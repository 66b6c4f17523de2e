// Plugin UIs in sandboxed frames: the page's side of the bridge (docs/frontend.md).
//
// Every frame is `<iframe sandbox="allow-scripts allow-forms">` on plugdock's frame document
// (/plugins-ui/<id>/<operation>/frame.html): an opaque origin, so the plugin's code cannot
// read the page's cookies or storage, reach its DOM, navigate the top window or open popups.
// It says hello with postMessage; the page answers only an iframe it made (event.source is
// that iframe's contentWindow) with a MessagePort, and serves the frame's requests over it
// (with the provider's fetch) after bridge.ts allows them.
import * as React from "react";

import { type BridgeGrant, checkCall, checkNavigation, refusal } from "./bridge";
import { ApiError, type FrontendApi, errorMessage } from "./client";
import {
  CONNECT,
  type ConnectMessage,
  type FrameKind,
  type FrameMessage,
  type FrameRoute,
  HELLO,
  type NoticeKind,
  type PlugdockUser,
  type ShellMessage,
  type WireBody,
} from "./protocol";

/** What the frames need of the page they are in (PlugdockProvider gives it). */
export interface FrameHost {
  /** Where plugdock is mounted ("" for the page's own origin). */
  baseUrl: string;
  frontend: FrontendApi;
  notify: (text: string, kind: NoticeKind) => void;
  navigate: (to: string) => void;
}

/** The FrameHost of the nearest PlugdockProvider. */
export const FrameHostContext = React.createContext<FrameHost | null>(null);

function useFrameHost(): FrameHost {
  const host = React.useContext(FrameHostContext);
  if (!host) throw new Error("plugdock: a plugin frame outside <PlugdockProvider>");
  return host;
}

/** The sandbox of every plugin frame: scripts and forms, nothing that reaches past the frame. */
export const FRAME_SANDBOX = "allow-scripts allow-forms";
/** Where a widget may show itself: a box this large in the bottom-right corner, no more. */
const WIDGET_BOX = { width: 480, height: 800 };
/** Room around a widget's content for its shadow (the chat dialog's blurs 32 px). */
const WIDGET_MARGIN = 32;
const NOTICE_KINDS: readonly string[] = ["success", "error", "info"];
/** How long the host's page waits for a framed plugin to say what it declares. */
const DESCRIBE_TIMEOUT_MS = 20_000;

// -- the handshake -------------------------------------------------------------------------

const frames = new Map<HTMLIFrameElement, (source: Window) => void>();
let listening = false;

function onHello(event: MessageEvent<{ type?: unknown }>): void {
  if (event.data?.type !== HELLO || !event.source) return;
  for (const [iframe, hello] of frames) {
    if (iframe.contentWindow === event.source) {
      hello(event.source);
      return;
    }
  }
}

/** Expect a hello from `iframe`. The listener starts with the first frame, never at import
 * (a server render, Next.js's prerender say, has no window). */
function register(iframe: HTMLIFrameElement, hello: (source: Window) => void): void {
  if (!listening) {
    window.addEventListener("message", onHello);
    listening = true;
  }
  frames.set(iframe, hello);
}

function frameSrc(host: FrameHost, frameUrl: string, kind: FrameKind, index = 0): string {
  return `${host.baseUrl}${frameUrl}${frameUrl.includes("?") ? "&" : "?"}kind=${kind}&index=${index}`;
}

/** Hand `source` (a frame the host's page made) a new port with what it renders first. */
function connect(source: Window, message: Omit<ConnectMessage, "type">, onMessage: (m: FrameMessage) => void) {
  const channel = new MessageChannel();
  channel.port1.onmessage = (event: MessageEvent<FrameMessage>) => onMessage(event.data);
  // "*": the frame's origin is opaque ("null"); the port, not the origin, is the secret.
  source.postMessage({ type: CONNECT, ...message } satisfies ConnectMessage, "*", [channel.port2]);
  return channel.port1;
}

// -- requests, notices, navigation -----------------------------------------------------------

function unwire(body: WireBody | undefined): unknown {
  if (!body || typeof body !== "object") return undefined;
  if ("form" in body && Array.isArray(body.form)) {
    const form = new FormData();
    for (const [name, value] of body.form) {
      if (value instanceof File) form.append(String(name), value, value.name);
      else form.append(String(name), String(value));
    }
    return form;
  }
  return "json" in body ? body.json : undefined;
}

function refuse(
  host: FrameHost,
  port: MessagePort,
  grant: BridgeGrant,
  id: number,
  method: unknown,
  path: unknown,
  reason: string,
) {
  const detail = refusal(grant.pluginId, method, path, reason);
  port.postMessage({ type: "reply", id, ok: false, status: 403, detail, message: detail } satisfies ShellMessage);
  console.warn(detail);
  host.frontend
    .refused({ plugin_id: grant.pluginId, method: String(method).slice(0, 10), path: String(path).slice(0, 300), reason })
    .catch(() => {}); // plugdock's log line is best effort; the refusal itself is not
}

interface Handlers {
  grant: BridgeGrant;
  ownPages: string[];
  corePages: string[];
  onSize?: (height: number) => void;
  onRegion?: (region: { left: number; top: number; right: number; bottom: number }) => void;
  onDescribe?: (config: unknown, error: string | null) => void;
}

function serve(host: FrameHost, port: MessagePort, message: FrameMessage, handlers: Handlers): void {
  const { grant } = handlers;
  switch (message?.type) {
    case "request": {
      const { id, method, path } = message;
      if (typeof id !== "number") return;
      const allowed = checkCall(grant, method, path);
      if (!allowed.ok) {
        refuse(host, port, grant, id, method, path, allowed.reason);
        return;
      }
      const headers: Record<string, string> = {};
      for (const [name, value] of Object.entries(message.headers ?? {})) headers[String(name)] = String(value);
      host.frontend.bridged(method, allowed.target, unwire(message.body), headers).then(
        (data) => port.postMessage({ type: "reply", id, ok: true, data } satisfies ShellMessage),
        (error: unknown) => {
          const status = error instanceof ApiError ? error.status : 0;
          const detail = error instanceof ApiError ? error.detail : null;
          port.postMessage({ type: "reply", id, ok: false, status, detail, message: errorMessage(error) } satisfies ShellMessage);
        },
      );
      return;
    }
    case "notify": {
      const kind = NOTICE_KINDS.includes(message.kind) ? message.kind : "info";
      host.notify(String(message.text).slice(0, 500), kind);
      return;
    }
    case "navigate": {
      const to = checkNavigation(message.to, handlers.ownPages, handlers.corePages);
      if (to) host.navigate(to);
      else refuse(host, port, grant, -1, "NAVIGATE", message.to, "only its own pages and the panel's pages");
      return;
    }
    case "size":
      if (typeof message.height === "number" && Number.isFinite(message.height)) handlers.onSize?.(message.height);
      return;
    case "region":
      handlers.onRegion?.(message);
      return;
    case "describe":
      handlers.onDescribe?.(message.config, null);
      return;
    case "describe-error":
      handlers.onDescribe?.(null, String(message.message));
      return;
  }
}

// -- what a framed plugin declares -----------------------------------------------------------

/** Run the plugin's bundle in a hidden frame and return what it declares (data, no code). */
export function describeFramed(host: FrameHost, frameUrl: string, name: string, grant: BridgeGrant): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const iframe = document.createElement("iframe");
    iframe.setAttribute("sandbox", FRAME_SANDBOX);
    iframe.hidden = true;
    iframe.title = `${name} (loading)`;
    let port: MessagePort | null = null;
    // A frame that never answers (its bundle hangs, or does not load) must not hold up the
    // other plugins: the manifest waits for every description.
    const timer = window.setTimeout(() => {
      done();
      reject(new Error("its frame did not describe its UI in time"));
    }, DESCRIBE_TIMEOUT_MS);
    const done = () => {
      window.clearTimeout(timer);
      frames.delete(iframe);
      port?.close();
      iframe.remove();
    };
    register(iframe, (source) => {
      port?.close();
      port = connect(source, { name, user: null, route: null }, (message) => {
        if (!port) return;
        serve(host, port, message, {
          grant,
          ownPages: [],
          corePages: [],
          onDescribe: (config, error) => {
            done();
            if (error === null) resolve(config);
            else reject(new Error(error));
          },
        });
      });
    });
    iframe.src = frameSrc(host, frameUrl, "describe");
    document.body.append(iframe);
  });
}

// -- pages and widgets -------------------------------------------------------------------------

interface FrameProps {
  pluginName: string;
  frameUrl: string;
  grant: BridgeGrant;
  /** The plugin's page patterns and the core's pages: where the frame may send the host's page. */
  ownPages: string[];
  corePages: string[];
  user: PlugdockUser | null;
  route: FrameRoute;
}

/** Connect an iframe the host's page renders; keep its route and user current over the port. */
function useFrame(
  iframe: React.RefObject<HTMLIFrameElement | null>,
  props: FrameProps,
  extra: Pick<Handlers, "onSize" | "onRegion">,
): void {
  const host = useFrameHost();
  const latest = React.useRef({ props, extra, host });
  const port = React.useRef<MessagePort | null>(null);
  React.useLayoutEffect(() => {
    latest.current = { props, extra, host };
  });
  React.useLayoutEffect(() => {
    const element = iframe.current;
    if (!element) return;
    register(element, (source) => {
      port.current?.close(); // the frame reloaded (or navigated itself): a new port
      const { props: p } = latest.current;
      const own = connect(source, { name: p.pluginName, user: p.user, route: p.route }, (message) => {
        const { props: now, extra: more, host: page } = latest.current;
        serve(page, own, message, { grant: now.grant, ownPages: now.ownPages, corePages: now.corePages, ...more });
      });
      port.current = own;
    });
    return () => {
      frames.delete(element);
      port.current?.close();
      port.current = null;
    };
  }, [iframe]);
  const { user, route } = props;
  // Layout effects: the frame hears of a new route before the host's page paints the change.
  React.useLayoutEffect(() => {
    port.current?.postMessage({ type: "user", user } satisfies ShellMessage);
  }, [user]);
  React.useLayoutEffect(() => {
    port.current?.postMessage({ type: "route", route } satisfies ShellMessage);
  }, [route]);
}

/** A plugin page: a frame as wide as the page area and as tall as its content. */
export function PageFrame(props: FrameProps & { title: string; hidden: boolean }) {
  const iframe = React.useRef<HTMLIFrameElement>(null);
  const host = useFrameHost();
  const [height, setHeight] = React.useState(0);
  useFrame(iframe, props, {
    // A hidden frame has no layout to measure: it keeps its height for when it shows again.
    onSize: (h) => {
      if (!props.hidden) setHeight(Math.min(Math.max(0, Math.ceil(h)), 100_000));
    },
  });
  return (
    <iframe
      ref={iframe}
      className="plugin-frame"
      title={props.title}
      sandbox={FRAME_SANDBOX}
      src={frameSrc(host, props.frameUrl, "page")}
      hidden={props.hidden}
      style={{ height }}
      data-plugin-frame={props.grant.pluginId}
    />
  );
}

/** A widget: a transparent frame over the window, clipped to what the widget shows. */
export function WidgetFrame(props: FrameProps & { index: number }) {
  const iframe = React.useRef<HTMLIFrameElement>(null);
  const host = useFrameHost();
  const [clip, setClip] = React.useState("inset(50%)");
  useFrame(iframe, props, {
    onRegion: ({ left, top, right, bottom }) => {
      const width = window.innerWidth;
      const height = window.innerHeight;
      const numbers = [left, top, right, bottom].map(Number);
      if (numbers.some((n) => !Number.isFinite(n)) || right <= left || bottom <= top) {
        setClip("inset(50%)"); // nothing to show: nothing to cover
        return;
      }
      // Only the bottom-right corner, at most WIDGET_BOX: never over the navigation.
      const l = Math.max(numbers[0] - WIDGET_MARGIN, width - WIDGET_BOX.width, 0);
      const t = Math.max(numbers[1] - WIDGET_MARGIN, height - WIDGET_BOX.height, 0);
      const r = Math.max(width - numbers[2] - WIDGET_MARGIN, 0);
      const b = Math.max(height - numbers[3] - WIDGET_MARGIN, 0);
      setClip(`inset(${t}px ${r}px ${b}px ${l}px)`);
    },
  });
  return (
    <iframe
      ref={iframe}
      className="widget-frame"
      title={`${props.pluginName} widget`}
      sandbox={FRAME_SANDBOX}
      src={frameSrc(host, props.frameUrl, "widget", props.index)}
      style={{ clipPath: clip }}
      data-plugin-frame={props.grant.pluginId}
    />
  );
}
