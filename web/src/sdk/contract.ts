// The plugin frontend contract: what a plugin's addon.config exports (as the default export
// of its bundle, frontend/dist/addon.js) and what the shell passes to its components.
// Documented for plugin authors in docs/frontend.md.
import type * as React from "react";

import type { PlugdockApi } from "./client";
import type { SdkUser } from "./user";

/** What every plugin page and widget receives as props. */
export interface PluginComponentProps {
  /** The panel's API as the signed-in user (the same as the SDK's `api`). */
  api: PlugdockApi;
  /** The signed-in user, or null for a visitor (widgets also render on the sign-in page). */
  user: SdkUser | null;
  /** Go to another page of the panel without a reload. */
  navigate: (to: string) => void;
  /** The plugin's id. */
  pluginId: string;
  /** The current path, and for pages the `:name` parameters of the matched route (`*` for a tail). */
  path: string;
  params: Record<string, string>;
}

export interface NavItem {
  label: string;
  path: string;
  /** Shown only to admins (the plugin's API must still check: this only hides the link). */
  adminOnly?: boolean;
  /** An emoji or short text shown before the label. */
  icon?: string;
}

export interface RouteDef {
  /** "/support/chats", "/support/chats/:id", or "/support/*". Never under /api/, /static/, /plugins/. */
  path: string;
  component: React.ComponentType<PluginComponentProps>;
  /** Only admins may open it (others see "not allowed"). */
  adminOnly?: boolean;
  /** The browser tab's title. */
  title?: string;
}

export interface AddonConfig {
  id?: string;
  nav?: NavItem[];
  routes?: RouteDef[];
  /** Rendered once on every page of the panel (e.g. a chat bubble). */
  widgets?: React.ComponentType<PluginComponentProps>[];
}

/** Type-checks an addon.config's default export: `export default defineAddon({...})`. */
export function defineAddon(config: AddonConfig): AddonConfig {
  return config;
}
