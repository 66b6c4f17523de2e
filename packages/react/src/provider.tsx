// <PlugdockProvider>: where plugdock is, how to call it, who is signed in, and the installed
// plugins' UIs, for every component and hook of this package.
import * as React from "react";

import {
  type FetchLike,
  type FrontendApi,
  type EventsApi,
  type MarketplaceApi,
  type PlugdockClient,
  createClient,
  defaultFetch,
  frontendApi,
  eventsApi,
  marketplaceApi,
} from "./client";
import { type FrameHost, FrameHostContext } from "./frames";
import { type ImportBundle, type LoadedPlugin, load, rememberPages } from "./plugins";
import type { NoticeKind, PlugdockUser } from "./protocol";

export interface PlugdockProviderProps {
  /** Where the host mounted plugdock: "" (the default) for the page's own origin. */
  baseUrl?: string;
  /**
   * How to make a request, so it carries the host's own credentials (a bearer token, say).
   * Default: `window.fetch` with `credentials: "include"` (the host's cookies).
   */
  fetch?: FetchLike;
  /** The signed-in user, as plugin pages and widgets are told (null: a visitor). */
  user?: PlugdockUser | null;
  /** Go to a path of the host's app (a plugin page's link). Default: a full page load. */
  navigate?: (to: string) => void;
  /** Show a short message (a plugin's notify(), a finished install). Default: the provider's own list. */
  notify?: (text: string, kind: NoticeKind) => void;
  /** The host's own pages a plugin frame may send the user to (besides the plugin's pages). */
  corePages?: string[];
  /** Run ui:same-origin plugins in the page (needs the reference panel's import map). Default: framed. */
  importBundle?: ImportBundle;
  /** What ui:same-origin plugin components get as `api` (the panel passes @plugdock/sdk's). */
  pluginApi?: unknown;
  children: React.ReactNode;
}

export interface Notice {
  id: number;
  kind: NoticeKind;
  text: string;
}

export interface PlugdockState {
  client: PlugdockClient;
  frontend: FrontendApi;
  marketplace: MarketplaceApi;
  events: EventsApi;
  user: PlugdockUser | null;
  navigate: (to: string) => void;
  notify: (text: string, kind: NoticeKind) => void;
  corePages: string[];
  pluginApi: unknown;
  plugins: LoadedPlugin[];
  /** False until the first manifest has been loaded (and its plugins described). */
  ready: boolean;
  /** Refetch the manifest, describe new plugins, drop uninstalled ones. */
  refresh: () => Promise<void>;
  /** The provider's own notices (when the host gave no `notify`). */
  notices: Notice[];
  dismiss: (id: number) => void;
}

const PlugdockContext = React.createContext<PlugdockState | null>(null);

/** Everything the provider holds; throws outside a <PlugdockProvider>. */
export function usePlugdock(): PlugdockState {
  const state = React.useContext(PlugdockContext);
  if (!state) throw new Error("plugdock: this component needs a <PlugdockProvider> around it");
  return state;
}

const hardNavigate = (to: string) => window.location.assign(to);
const NOTICE_MS = 6000;

export function PlugdockProvider(props: PlugdockProviderProps) {
  const { baseUrl = "", fetch = defaultFetch, user = null, navigate = hardNavigate, importBundle, pluginApi, children } = props;
  const corePages = React.useMemo(() => props.corePages ?? [], [props.corePages]);
  const [notices, setNotices] = React.useState<Notice[]>([]);
  const nextNotice = React.useRef(1);
  const hostNotify = props.notify;

  const dismiss = React.useCallback((id: number) => setNotices((all) => all.filter((n) => n.id !== id)), []);
  const notify = React.useCallback(
    (text: string, kind: NoticeKind) => {
      if (hostNotify) return hostNotify(text, kind);
      const id = nextNotice.current++;
      setNotices((all) => [...all.slice(-4), { id, kind, text }]);
      if (kind !== "error") window.setTimeout(() => dismiss(id), NOTICE_MS);
    },
    [hostNotify, dismiss],
  );

  // The latest callbacks, so a host passing new functions on each render does not reload plugins.
  const latestRef = React.useRef({ fetch, navigate, notify });
  React.useLayoutEffect(() => {
    latestRef.current = { fetch, navigate, notify };
  });
  const callFetch = React.useCallback<FetchLike>((url, init) => latestRef.current.fetch(url, init), []);
  const callNotify = React.useCallback((text: string, kind: NoticeKind) => latestRef.current.notify(text, kind), []);
  const callNavigate = React.useCallback((to: string) => latestRef.current.navigate(to), []);
  // eslint-disable-next-line react-hooks/refs -- createClient keeps callFetch for later calls, never calls it here
  const client = React.useMemo(() => createClient(baseUrl, callFetch), [baseUrl, callFetch]);
  const frameHost = React.useMemo<FrameHost>(
    () => ({ baseUrl: client.baseUrl, frontend: frontendApi(client), notify: callNotify, navigate: callNavigate }),
    [client, callNotify, callNavigate],
  );

  const [plugins, setPlugins] = React.useState<LoadedPlugin[]>([]);
  const [ready, setReady] = React.useState(false);
  const call = React.useRef(0);
  const refresh = React.useCallback(async () => {
    const mine = ++call.current;
    try {
      const manifest = await frameHost.frontend.plugins();
      const loaded = await Promise.all(manifest.map((entry) => load(frameHost, entry, importBundle)));
      if (mine !== call.current) return; // a newer refresh is under way
      rememberPages(loaded);
      setPlugins(loaded);
    } catch (error) {
      console.error("plugdock: cannot load the plugin manifest", error);
    } finally {
      if (mine === call.current) setReady(true);
    }
  }, [frameHost, importBundle]);

  const userKey = user ? `${user.id}|${user.username}|${user.role}` : "";
  React.useEffect(() => {
    // eslint-disable-next-line react-hooks/set-state-in-effect -- state is set only after an await (a known false positive: React issue 34905)
    void refresh();
    // Another admin (or the CLI) may install or uninstall: catch up when the tab is used again.
    const onVisible = () => {
      if (document.visibilityState === "visible") void refresh();
    };
    document.addEventListener("visibilitychange", onVisible);
    window.addEventListener("focus", onVisible);
    return () => {
      document.removeEventListener("visibilitychange", onVisible);
      window.removeEventListener("focus", onVisible);
    };
  }, [refresh, userKey]);

  // One user object per signed-in user: frames are told again only when it changes.
  const stableUser = React.useMemo(() => user, [userKey]); // eslint-disable-line react-hooks/exhaustive-deps -- by value
  const value = React.useMemo<PlugdockState>(
    () => ({
      client,
      frontend: frameHost.frontend,
      marketplace: marketplaceApi(client),
      events: eventsApi(client),
      user: stableUser,
      navigate: frameHost.navigate,
      notify: frameHost.notify,
      corePages,
      pluginApi,
      plugins,
      ready,
      refresh,
      notices,
      dismiss,
    }),
    [client, frameHost, stableUser, corePages, pluginApi, plugins, ready, refresh, notices, dismiss],
  );
  return (
    <PlugdockContext.Provider value={value}>
      <FrameHostContext.Provider value={frameHost}>{children}</FrameHostContext.Provider>
    </PlugdockContext.Provider>
  );
}
