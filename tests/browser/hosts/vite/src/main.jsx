// A host app's own frontend, built by Vite: its sign-in, its router (a few lines of history
// API), and plugdock's parts from @plugdock/react where the host wants them.
import "@plugdock/react/styles.css";

import {
  InstalledPlugins,
  Marketplace,
  PlugdockNotices,
  PlugdockProvider,
  PluginPage,
  PluginWidgets,
  Slot,
  matchPath,
  usePluginNav,
  usePluginRoutes,
} from "@plugdock/react";
import { useEffect, useState, useSyncExternalStore } from "react";
import { createRoot } from "react-dom/client";

function subscribe(callback) {
  window.addEventListener("popstate", callback);
  return () => window.removeEventListener("popstate", callback);
}

function go(to) {
  window.history.pushState(null, "", to);
  window.dispatchEvent(new PopStateEvent("popstate"));
}

function HostLink({ to, children }) {
  return (
    <a
      href={to}
      onClick={(event) => {
        event.preventDefault();
        go(to);
      }}
    >
      {children}
    </a>
  );
}

function SignIn() {
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

function Pages({ path }) {
  const routes = usePluginRoutes();
  const nav = usePluginNav();
  const found = routes.find((route) => matchPath(route.path, path));
  let page;
  if (path === "/admin/plugins") page = <Marketplace />;
  else if (path === "/admin/installed") page = <InstalledPlugins marketplacePath="/admin/plugins" />;
  else if (found) page = <PluginPage plugin={found.pluginId} path={path} />;
  else page = <h1>Acme home</h1>;
  return (
    <>
      <nav aria-label="Acme">
        <HostLink to="/">Home</HostLink> <HostLink to="/admin/plugins">Plugins</HostLink>{" "}
        <HostLink to="/admin/installed">Installed</HostLink>
        {nav.map((item) => (
          <span key={item.path}>
            {" "}
            <HostLink to={item.path}>{item.label}</HostLink>
          </span>
        ))}
      </nav>
      <Slot name="acme.header" />
      <main>{page}</main>
      <PluginWidgets path={path} />
      <PlugdockNotices />
    </>
  );
}

function App() {
  const path = useSyncExternalStore(subscribe, () => window.location.pathname);
  const [me, setMe] = useState(undefined);
  useEffect(() => {
    fetch("/host/me", { credentials: "include" })
      .then((r) => (r.ok ? r.json() : null))
      .then(setMe, () => setMe(null));
  }, []);
  if (me === undefined) return <p>Loading…</p>;
  if (me === null) return <SignIn />;
  const user = { id: me.id, username: me.username, role: me.is_admin ? "admin" : "user" };
  return (
    <PlugdockProvider user={user} navigate={go}>
      <p>Signed in to Acme as {me.username}</p>
      <Pages path={path} />
    </PlugdockProvider>
  );
}

createRoot(document.getElementById("root")).render(<App />);
