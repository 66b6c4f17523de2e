// The installed plugins' UIs: the frontend manifest, each bundle imported once (lazily, by its
// versioned URL), and the nav items, routes and widgets they declare.
import * as React from "react";

import type { AddonConfig, NavItem, PluginComponentProps, RouteDef } from "@plugdock/sdk";

import { type FrontendEntry, errorMessage, frontend } from "./api";
import type { BridgeGrant } from "./bridge";
import { describeFramed } from "./frames";

/** A page of a plugin: its component when the plugin runs in the shell's page, else null (framed). */
export interface PluginRoute {
  path: string;
  adminOnly?: boolean;
  title?: string;
  component: RouteDef["component"] | null;
}

export interface PluginConfig {
  nav: NavItem[];
  routes: PluginRoute[];
  /** Components (same-origin), or null for each widget of a framed plugin (its frame renders it). */
  widgets: (React.ComponentType<PluginComponentProps> | null)[];
}

export interface LoadedPlugin {
  id: string;
  name: string;
  version: string;
  url: string;
  /** The sandboxed frame document its pages and widgets run in. */
  frameUrl: string;
  /** Granted ui:same-origin: imported into the shell's page, no frame. */
  sameOrigin: boolean;
  grant: BridgeGrant;
  config: PluginConfig | null;
  error: string | null;
}

interface PluginsState {
  plugins: LoadedPlugin[];
  /** False until the first manifest has been loaded (and its bundles imported). */
  ready: boolean;
  /** Refetch the manifest, import new bundles, drop uninstalled ones. */
  refresh: () => Promise<void>;
}

const PluginsContext = React.createContext<PluginsState>({
  plugins: [],
  ready: false,
  refresh: async () => {},
});

export function usePlugins(): PluginsState {
  return React.useContext(PluginsContext);
}

const KNOWN_PAGES_KEY = "plugdock_known_plugin_pages";

/** Pages of plugins seen earlier (path → plugin name), so an old URL can say "not installed". */
export function knownPluginPage(path: string): string | null {
  try {
    const known = JSON.parse(localStorage.getItem(KNOWN_PAGES_KEY) ?? "{}") as Record<string, string>;
    return typeof known[path] === "string" ? known[path] : null;
  } catch {
    return null;
  }
}

function rememberPages(plugins: LoadedPlugin[]): void {
  try {
    const known = JSON.parse(localStorage.getItem(KNOWN_PAGES_KEY) ?? "{}") as Record<string, string>;
    for (const plugin of plugins) {
      for (const route of plugin.config?.routes ?? []) known[route.path] = plugin.name;
    }
    localStorage.setItem(KNOWN_PAGES_KEY, JSON.stringify(known));
  } catch {
    // storage unavailable: the not-installed page is then a plain "not found"
  }
}

const RESERVED = /^\/(api|static|plugins)(\/|$)/;

function isComponent(value: unknown): boolean {
  return typeof value === "function" || (typeof value === "object" && value !== null && "$$typeof" in value);
}

/**
 * Check a bundle's default export against the contract; throw with every problem found. A framed
 * plugin's is its frame's description: components are `true` (the frame has one) or not.
 */
export function normalizeConfig(raw: unknown, framed = false): PluginConfig {
  const problems: string[] = [];
  const hasComponent = (value: unknown) => (framed ? value === true : isComponent(value));
  const config = (raw ?? {}) as AddonConfig;
  if (typeof config !== "object") throw new Error("the bundle's default export is not an object");
  const nav: NavItem[] = [];
  for (const [i, item] of (config.nav ?? []).entries()) {
    if (!item || typeof item.label !== "string" || typeof item.path !== "string" || !item.path.startsWith("/")) {
      problems.push(`nav[${i}] needs a label and a path starting with "/"`);
    } else {
      nav.push({ label: item.label, path: item.path, adminOnly: Boolean(item.adminOnly), icon: item.icon });
    }
  }
  const routes: PluginRoute[] = [];
  for (const [i, route] of (config.routes ?? []).entries()) {
    if (!route || typeof route.path !== "string" || !route.path.startsWith("/")) {
      problems.push(`routes[${i}] needs a path starting with "/"`);
    } else if (RESERVED.test(route.path)) {
      problems.push(`routes[${i}]: ${route.path} is reserved for the panel`);
    } else if (!hasComponent(route.component)) {
      problems.push(`routes[${i}] (${route.path}) has no component`);
    } else {
      const { path, adminOnly, title } = route;
      routes.push({
        path,
        adminOnly: Boolean(adminOnly),
        title: typeof title === "string" ? title : undefined,
        component: framed ? null : route.component,
      });
    }
  }
  const widgets: PluginConfig["widgets"] = [];
  for (const [i, widget] of ((config.widgets ?? []) as unknown[]).entries()) {
    if (!hasComponent(widget)) problems.push(`widgets[${i}] is not a component`);
    else widgets.push(framed ? null : (widget as React.ComponentType<PluginComponentProps>));
  }
  if (problems.length) throw new Error(problems.join("; "));
  return { nav, routes, widgets };
}

/** Bundles imported so far, by URL: each URL is imported once per page load. */
const modules = new Map<string, Promise<unknown>>();

async function load(entry: FrontendEntry): Promise<LoadedPlugin> {
  const grant: BridgeGrant = { pluginId: entry.id, apiRoutes: entry.api_routes, coreReads: entry.core_reads };
  const base = {
    id: entry.id,
    name: entry.name,
    version: entry.version,
    url: entry.bundle_url,
    frameUrl: entry.frame_url,
    sameOrigin: entry.same_origin,
    grant,
  };
  try {
    // Same-origin (granted): the shell imports the bundle. Framed: the plugin's code runs only
    // in its frames; a hidden one tells the shell what the plugin declares.
    const key = entry.same_origin ? entry.bundle_url : entry.frame_url;
    let module = modules.get(key);
    if (!module) {
      module = entry.same_origin
        ? import(/* webpackIgnore: true */ entry.bundle_url)
        : describeFramed(entry.frame_url, entry.name, grant);
      modules.set(key, module);
      module.catch(() => modules.delete(key)); // retry on the next refresh
    }
    const loaded = (await module) as { default?: unknown };
    if (!entry.same_origin) return { ...base, config: normalizeConfig(loaded, true), error: null };
    return { ...base, config: normalizeConfig(loaded.default ?? loaded), error: null };
  } catch (error) {
    console.error(`plugdock: the UI of ${entry.id} could not be loaded`, error);
    return { ...base, config: null, error: errorMessage(error) };
  }
}

export function PluginsProvider({ children }: { children: React.ReactNode }) {
  const [plugins, setPlugins] = React.useState<LoadedPlugin[]>([]);
  const [ready, setReady] = React.useState(false);
  const latest = React.useRef(0);

  const refresh = React.useCallback(async () => {
    const call = ++latest.current;
    try {
      const manifest = await frontend.plugins();
      const loaded = await Promise.all(manifest.map(load));
      if (call !== latest.current) return; // a newer refresh is under way
      rememberPages(loaded);
      setPlugins(loaded);
    } catch (error) {
      console.error("plugdock: cannot load the plugin manifest", error);
    } finally {
      if (call === latest.current) setReady(true);
    }
  }, []);

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
  }, [refresh]);

  const value = React.useMemo(() => ({ plugins, ready, refresh }), [plugins, ready, refresh]);
  return <PluginsContext.Provider value={value}>{children}</PluginsContext.Provider>;
}
