// The installed plugins' UIs: the frontend manifest, each bundle imported once (lazily, by its
// versioned URL), and the nav items, routes and widgets they declare.
import * as React from "react";

import type { AddonConfig, NavItem, RouteDef } from "@plugdock/sdk";

import { type FrontendEntry, errorMessage, frontend } from "./api";

export interface LoadedPlugin {
  id: string;
  name: string;
  version: string;
  url: string;
  config: Required<Pick<AddonConfig, "nav" | "routes" | "widgets">> | null;
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

/** Check a bundle's default export against the contract; throw with every problem found. */
export function normalizeConfig(raw: unknown): NonNullable<LoadedPlugin["config"]> {
  const problems: string[] = [];
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
  const routes: RouteDef[] = [];
  for (const [i, route] of (config.routes ?? []).entries()) {
    if (!route || typeof route.path !== "string" || !route.path.startsWith("/")) {
      problems.push(`routes[${i}] needs a path starting with "/"`);
    } else if (RESERVED.test(route.path)) {
      problems.push(`routes[${i}]: ${route.path} is reserved for the panel`);
    } else if (!isComponent(route.component)) {
      problems.push(`routes[${i}] (${route.path}) has no component`);
    } else {
      routes.push(route);
    }
  }
  const widgets = (config.widgets ?? []).filter((widget, i) => {
    if (isComponent(widget)) return true;
    problems.push(`widgets[${i}] is not a component`);
    return false;
  });
  if (problems.length) throw new Error(problems.join("; "));
  return { nav, routes, widgets };
}

/** Bundles imported so far, by URL: each URL is imported once per page load. */
const modules = new Map<string, Promise<unknown>>();

async function load(entry: FrontendEntry): Promise<LoadedPlugin> {
  const base = { id: entry.id, name: entry.name, version: entry.version, url: entry.bundle_url };
  try {
    let module = modules.get(entry.bundle_url);
    if (!module) {
      module = import(/* webpackIgnore: true */ entry.bundle_url);
      modules.set(entry.bundle_url, module);
      module.catch(() => modules.delete(entry.bundle_url)); // retry on the next refresh
    }
    const loaded = (await module) as { default?: unknown };
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
