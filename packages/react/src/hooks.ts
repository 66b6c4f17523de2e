// Hooks for any router: the installed plugins, their pages and their nav items, as data the
// host maps onto its own router (React Router, Next.js, TanStack, a switch statement).
import { usePlugdock } from "./provider";
import type { LoadedPlugin, NavItem } from "./plugins";

export interface PluginsInfo {
  /** The installed plugins' UI entries (each with its declared config, or the error loading it). */
  plugins: LoadedPlugin[];
  /** False until the first list has been loaded. */
  ready: boolean;
  /** Load the list again (the admin screens do after every lifecycle change). */
  refresh: () => Promise<void>;
}

/** The installed plugins' UIs, from GET /api/v1/frontend/plugins; refreshed after lifecycle changes. */
export function usePlugins(): PluginsInfo {
  const { plugins, ready, refresh } = usePlugdock();
  return { plugins, ready, refresh };
}

export interface PluginRouteInfo {
  pluginId: string;
  pluginName: string;
  /** The page's pattern: "/support/chats", "/support/chats/:id", "/support/*". */
  path: string;
  title: string;
  adminOnly: boolean;
}

function visible(adminOnly: boolean | undefined, role: string | undefined): boolean {
  return !adminOnly || role === "admin";
}

/** Every page the installed plugins declare (admin-only pages for admins only). */
export function usePluginRoutes(): PluginRouteInfo[] {
  const { plugins, user } = usePlugdock();
  return plugins.flatMap((plugin) =>
    (plugin.config?.routes ?? [])
      .filter((route) => visible(route.adminOnly, user?.role))
      .map((route) => ({
        pluginId: plugin.id,
        pluginName: plugin.name,
        path: route.path,
        title: route.title ?? plugin.name,
        adminOnly: Boolean(route.adminOnly),
      })),
  );
}

export interface PluginNavInfo extends NavItem {
  pluginId: string;
}

/** Every nav item the installed plugins declare (admin-only items for admins only). */
export function usePluginNav(): PluginNavInfo[] {
  const { plugins, user } = usePlugdock();
  return plugins.flatMap((plugin) =>
    (plugin.config?.nav ?? [])
      .filter((item) => visible(item.adminOnly, user?.role))
      .map((item) => ({ ...item, pluginId: plugin.id })),
  );
}
