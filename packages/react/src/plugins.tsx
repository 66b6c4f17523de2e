// The installed plugins' UIs: the frontend manifest's entries, each described once (by a
// hidden frame, or by importing its bundle when the host runs ui:same-origin plugins in its
// page), and the nav items, routes and widgets they declare.
import type * as React from "react";

import type { BridgeGrant } from "./bridge";
import { type FrontendEntry, errorMessage } from "./client";
import { type FrameHost, describeFramed } from "./frames";
import type { PlugdockUser } from "./protocol";

/** What a plugin's page and widget components receive (@plugdock/sdk's PluginComponentProps). */
export interface PluginComponentProps {
  /** The host's API object for plugins (the reference panel's: @plugdock/sdk's `api`). */
  api: unknown;
  user: PlugdockUser | null;
  navigate: (to: string) => void;
  pluginId: string;
  path: string;
  params: Record<string, string>;
}

/** A nav item a plugin declares: the host maps it to its own navigation (usePluginNav). */
export interface NavItem {
  label: string;
  path: string;
  /** Shown only to admins (the plugin's API must still check: this only hides the link). */
  adminOnly?: boolean;
  /** An emoji or short text shown before the label. */
  icon?: string;
}

/** A plugin bundle's default export (@plugdock/sdk's AddonConfig), as far as it is read here. */
interface AddonConfig {
  nav?: NavItem[];
  routes?: { path: string; component: unknown; adminOnly?: boolean; title?: string }[];
  widgets?: unknown[];
}

/** Imports a ui:same-origin plugin's bundle into the page (the reference panel's import map). */
export type ImportBundle = (url: string) => Promise<unknown>;

/** A page of a plugin: its component when the plugin runs in the host's page, else null (framed). */
export interface PluginRoute {
  path: string;
  adminOnly?: boolean;
  title?: string;
  component: React.ComponentType<PluginComponentProps> | null;
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
  /** Granted ui:same-origin and imported into the host's page (no frame); else framed. */
  sameOrigin: boolean;
  grant: BridgeGrant;
  config: PluginConfig | null;
  error: string | null;
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

export function rememberPages(plugins: LoadedPlugin[]): void {
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
        component: framed ? null : (route.component as React.ComponentType<PluginComponentProps>),
      });
    }
  }
  const widgets: PluginConfig["widgets"] = [];
  for (const [i, widget] of ((config.widgets ?? [])).entries()) {
    if (!hasComponent(widget)) problems.push(`widgets[${i}] is not a component`);
    else widgets.push(framed ? null : (widget as React.ComponentType<PluginComponentProps>));
  }
  if (problems.length) throw new Error(problems.join("; "));
  return { nav, routes, widgets };
}

/** Bundles imported so far, by URL: each URL is imported once per page load. */
const modules = new Map<string, Promise<unknown>>();

/**
 * Describe one manifest entry. A ui:same-origin plugin is imported into the page only when the
 * host can (`importBundle`: the reference panel's import map gives its bundle React and the
 * SDK); in any other host it is framed like every plugin, its pages and widgets working the same.
 */
export async function load(host: FrameHost, entry: FrontendEntry, importBundle?: ImportBundle): Promise<LoadedPlugin> {
  const sameOrigin = entry.same_origin && importBundle !== undefined;
  const grant: BridgeGrant = { pluginId: entry.id, apiRoutes: entry.api_routes, coreReads: entry.core_reads };
  const base = {
    id: entry.id,
    name: entry.name,
    version: entry.version,
    url: entry.bundle_url,
    frameUrl: entry.frame_url,
    sameOrigin,
    grant,
  };
  try {
    // Same-origin (granted): the host's page imports the bundle. Framed: the plugin's code runs only
    // in its frames; a hidden one tells the host's page what the plugin declares.
    const key = sameOrigin ? entry.bundle_url : entry.frame_url;
    let module = modules.get(key);
    if (!module) {
      module = sameOrigin && importBundle
        ? importBundle(host.baseUrl + entry.bundle_url)
        : describeFramed(host, entry.frame_url, entry.name, grant);
      modules.set(key, module);
      module.catch(() => modules.delete(key)); // retry on the next refresh
    }
    const loaded = (await module) as { default?: unknown };
    if (!sameOrigin) return { ...base, config: normalizeConfig(loaded, true), error: null };
    return { ...base, config: normalizeConfig(loaded.default ?? loaded), error: null };
  } catch (error) {
    console.error(`plugdock: the UI of ${entry.id} could not be loaded`, error);
    return { ...base, config: null, error: errorMessage(error) };
  }
}
