"use client";
// The host's shell: its sign-in, its nav, and plugdock around every page. Plugin pages live
// under one static route, /ext?path=<the plugin's path> (a static export has no dynamic
// catch-all), so the host maps plugin paths there for links and for plugins' navigate().
import { PlugdockNotices, PlugdockProvider, PluginWidgets, Slot, usePluginNav } from "@plugdock/react";
import Link from "next/link";
import { usePathname, useRouter } from "next/navigation";
import { useCallback, useEffect, useState } from "react";

export const pluginHref = (path) => `/ext?path=${encodeURIComponent(path)}`;
/** The host's own pages: a plugin may send the user there too (the rest are plugin pages). */
const HOST_PAGES = ["/", "/admin/plugins", "/admin/installed"];

function Nav() {
  const items = usePluginNav();
  return (
    <nav aria-label="Acme">
      <Link href="/">Home</Link> <Link href="/admin/plugins">Plugins</Link> <Link href="/admin/installed">Installed</Link>
      {items.map((item) => (
        <span key={item.path}>
          {" "}
          <Link href={pluginHref(item.path)}>{item.label}</Link>
        </span>
      ))}
    </nav>
  );
}

function Widgets() {
  const pathname = usePathname();
  return <PluginWidgets path={pathname} />;
}

export function Acme({ children }) {
  const router = useRouter();
  const navigate = useCallback(
    (to) => router.push(HOST_PAGES.includes(to.split("?")[0]) ? to : pluginHref(to)),
    [router],
  );
  const [me, setMe] = useState(undefined);
  useEffect(() => {
    fetch("/host/me", { credentials: "include" })
      .then((r) => (r.ok ? r.json() : null))
      .then(setMe, () => setMe(null));
  }, []);
  if (me === undefined) return <p>Loading…</p>;
  if (me === null) {
    return (
      <form method="post" action="/host/login">
        <h1>Sign in to Acme</h1>
        <label>
          Account <input name="username" />
        </label>
        <button type="submit">Sign in</button>
      </form>
    );
  }
  const user = { id: me.id, username: me.username, role: me.is_admin ? "admin" : "user" };
  // The session cookie stays on /host/: plugdock's calls carry the token this host gave.
  const withToken = (url, init) =>
    fetch(url, { ...init, credentials: "omit", headers: { ...init.headers, Authorization: `Bearer ${me.token}` } });
  return (
    <PlugdockProvider user={user} navigate={navigate} corePages={HOST_PAGES} fetch={withToken}>
      <p>Signed in to Acme as {me.username}</p>
      <Nav />
      <Slot name="acme.header" />
      <main>{children}</main>
      <Widgets />
      <PlugdockNotices />
    </PlugdockProvider>
  );
}
