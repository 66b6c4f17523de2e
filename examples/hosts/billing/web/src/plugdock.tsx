// Everything plugdock in the billing UI, in this one file, from @plugdock/react:
//
// - <PlugdockShell> puts the provider around billing's layout: billing's own fetch (its cookie
//   and X-Plugdock-CSRF), the signed-in billing account as the plugins' user, billing's router;
//   the plugins' widgets (the chatbot's bubble) and plugdock's notices on every page.
// - usePlugdockNav() gives billing's menu "Add-ons" and the plugins' own nav items.
// - <PlugdockRoutes> renders plugdock's screens under /addons and each plugin page (in its
//   sandboxed frame) inside billing's layout; any other path is billing's.
//
// The --plugdock-* variables in styles.css give the screens billing's look.
import "@plugdock/react/styles.css";

import {
  EventDeliveries,
  InstalledPlugins,
  Marketplace,
  PlugdockNotices,
  PlugdockProvider,
  type PlugdockUser,
  PluginPage,
  PluginWidgets,
  matchPath,
  usePlugdock,
  usePluginNav,
  usePluginRoutes,
  usePlugins,
} from "@plugdock/react";
import { type ReactNode, useMemo } from "react";

import { type Me, hostFetch } from "./api";
import { Link, navigate, usePath } from "./router";

/** Where plugdock's screens live in the billing UI. Not /plugins: plugdock serves the
 * plugins' frame documents and bundles there. */
export const PLUGDOCK_BASE = "/addons";

/** billing's own pages, which a plugin frame may send the user to. */
const BILLING_PAGES = ["/customers", "/invoices", "/payments"];

export type NavItem = { to: string; label: string };

/** The provider around billing's signed-in layout, and what plugdock shows on every page. */
export function PlugdockShell(props: { me: Me; children: ReactNode }) {
  const { id, email, is_admin } = props.me;
  const user = useMemo<PlugdockUser>(
    () => ({ id, username: email, role: is_admin ? "admin" : "user" }),
    [id, email, is_admin],
  );
  const path = usePath();
  return (
    <PlugdockProvider fetch={hostFetch} user={user} navigate={navigate} corePages={BILLING_PAGES}>
      {props.children}
      <PluginWidgets path={path} />
      <PlugdockNotices />
    </PlugdockProvider>
  );
}

/** The entries plugdock adds to billing's menu: the add-ons screens, then the plugins' pages
 * (admin-only ones for admins only, as usePluginNav decides). */
export function usePlugdockNav(): NavItem[] {
  const plugins = usePluginNav().map((item) => ({ to: item.path, label: item.label }));
  return [{ to: PLUGDOCK_BASE, label: "Add-ons" }, ...plugins];
}

/** plugdock's page for ``path``, or ``fallback`` (billing's page) when the path is not plugdock's. */
export function PlugdockRoutes(props: { path: string; fallback: ReactNode }) {
  const { path } = props;
  const routes = usePluginRoutes();
  const { ready } = usePlugins();
  if (path === PLUGDOCK_BASE || path.startsWith(`${PLUGDOCK_BASE}/`)) return <AddonsPage path={path} />;
  const found = routes.find((route) => matchPath(route.path, path));
  if (found) return <PluginPage plugin={found.pluginId} path={path} />;
  // A deep link to a plugin page: wait for the plugin list before deciding it is billing's.
  if (!ready && path !== "/" && !BILLING_PAGES.some((page) => path.startsWith(page))) {
    return <p className="muted">Loading…</p>;
  }
  return props.fallback;
}

const TABS = [
  { to: PLUGDOCK_BASE, label: "Marketplace", adminOnly: false },
  { to: `${PLUGDOCK_BASE}/installed`, label: "Installed", adminOnly: true },
  { to: `${PLUGDOCK_BASE}/deliveries`, label: "Event deliveries", adminOnly: true },
];

/** /addons: the marketplace for everyone (read-only for non-admins); what is installed and the
 * event deliveries for admins. */
function AddonsPage(props: { path: string }) {
  const admin = usePlugdock().user?.role === "admin";
  const tabs = TABS.filter((tab) => admin || !tab.adminOnly);
  const current = tabs.find((tab) => tab.to === props.path) ?? tabs[0];
  return (
    <section className="addons">
      <nav className="tabs" aria-label="Add-ons">
        {tabs.map((tab) => (
          <Link key={tab.to} to={tab.to} className={tab === current ? "active" : ""}>
            {tab.label}
          </Link>
        ))}
      </nav>
      {current.to === `${PLUGDOCK_BASE}/installed` ? (
        <InstalledPlugins marketplacePath={PLUGDOCK_BASE} />
      ) : current.to === `${PLUGDOCK_BASE}/deliveries` ? (
        <EventDeliveries />
      ) : (
        <Marketplace />
      )}
    </section>
  );
}
