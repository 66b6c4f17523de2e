// The panel's frame: a header with the user, the navigation (core pages, then the plugins'
// pages), the main area, and the plugins' global widgets.
import * as React from "react";

import type { User } from "../api";
import { usePlugins } from "@plugdock/react";
import { Link, usePath } from "../router";

interface NavLink {
  label: string;
  path: string;
  icon?: string;
}

const CORE_NAV: NavLink[] = [
  { label: "Dashboard", path: "/", icon: "🏠" },
  { label: "Marketplace", path: "/marketplace", icon: "🛍️" },
  { label: "Installed plugins", path: "/installed", icon: "🧩" },
];

// For admins: the panel's users, and host events delivered to plugins (dead ones to retry).
const ADMIN_NAV: NavLink[] = [
  { label: "Users", path: "/users", icon: "👥" },
  { label: "Event deliveries", path: "/events", icon: "📨" },
];

function isActive(linkPath: string, path: string): boolean {
  if (linkPath === "/") return path === "/";
  return path === linkPath || path.startsWith(`${linkPath}/`);
}

export function Layout({ user, onLogout, children }: { user: User; onLogout: () => void; children: React.ReactNode }) {
  const path = usePath();
  const { plugins } = usePlugins();
  const [menuOpen, setMenuOpen] = React.useState(false);
  const isAdmin = user.role === "admin";

  // Another page closes the menu (while rendering: an effect would paint it open once more).
  const [menuPath, setMenuPath] = React.useState(path);
  if (menuPath !== path) {
    setMenuPath(path);
    setMenuOpen(false);
  }

  const pluginNav = plugins.flatMap((plugin) =>
    (plugin.config?.nav ?? [])
      .filter((item) => isAdmin || !item.adminOnly)
      .map((item) => ({ ...item, key: `${plugin.id}:${item.path}` })),
  );

  const renderLink = (link: NavLink & { key?: string }) => {
    const active = isActive(link.path, path);
    return (
      <li key={link.key ?? link.path}>
        <Link to={link.path} className={active ? "nav-link active" : "nav-link"} aria-current={active ? "page" : undefined}>
          {link.icon && (
            <span className="nav-icon" aria-hidden="true">
              {link.icon}
            </span>
          )}
          {link.label}
        </Link>
      </li>
    );
  };

  return (
    <div className="app">
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <header className="topbar">
        <button
          type="button"
          className="menu-toggle"
          aria-expanded={menuOpen}
          aria-controls="main-nav"
          onClick={() => setMenuOpen((open) => !open)}
        >
          <span aria-hidden="true">☰</span> Menu
        </button>
        <Link to="/" className="brand">
          <span aria-hidden="true">🔌</span> plugdock
        </Link>
        <div className="topbar-user">
          <span className="user-name">
            {user.username} <span className="role-badge">{user.role}</span>
          </span>
          <button type="button" className="button button-small" onClick={onLogout}>
            Sign out
          </button>
        </div>
      </header>
      <div className="frame">
        <nav id="main-nav" className={menuOpen ? "sidebar open" : "sidebar"} aria-label="Main">
          <ul className="nav-list">{(isAdmin ? [...CORE_NAV, ...ADMIN_NAV] : CORE_NAV).map(renderLink)}</ul>
          {pluginNav.length > 0 && (
            <>
              <h2 className="nav-heading" id="plugin-nav-heading">
                Plugins
              </h2>
              <ul className="nav-list" aria-labelledby="plugin-nav-heading">
                {pluginNav.map(renderLink)}
              </ul>
            </>
          )}
        </nav>
        <main id="main" className="content" tabIndex={-1}>
          {children}
        </main>
      </div>
    </div>
  );
}
