// The shell: signs the user in, then routes between the core pages and the plugins' pages.
import type { PluginComponentProps } from "@plugdock/sdk";
// eslint-disable-next-line no-restricted-imports -- handed to plugin pages and widgets as props.api, never called here
import { api } from "@plugdock/sdk";
import * as React from "react";

import { useAuth } from "./auth";
import { ErrorBoundary } from "./components/ErrorBoundary";
import { Layout } from "./components/Layout";
import { Toasts } from "./components/Toasts";
import { DashboardPage } from "./pages/DashboardPage";
import { InstalledPage } from "./pages/InstalledPage";
import { LoginPage } from "./pages/LoginPage";
import { MarketplacePage } from "./pages/MarketplacePage";
import { NotFoundPage } from "./pages/NotFoundPage";
import { UsersPage } from "./pages/UsersPage";
import { type LoadedPlugin, usePlugins } from "./plugins";
import { matchPath, navigate, usePath } from "./router";

const CORE_PAGES: Record<string, { title: string; render: () => React.ReactNode }> = {
  "/": { title: "Dashboard", render: () => <DashboardPage /> },
  "/marketplace": { title: "Marketplace", render: () => <MarketplacePage /> },
  "/installed": { title: "Installed plugins", render: () => <InstalledPage /> },
  "/users": { title: "Users", render: () => <UsersPage /> },
};

function findPluginRoute(plugins: LoadedPlugin[], path: string) {
  for (const plugin of plugins) {
    for (const route of plugin.config?.routes ?? []) {
      const params = matchPath(route.path, path);
      if (params) return { plugin, route, params };
    }
  }
  return null;
}

/** The plugins' widgets, each behind its own error boundary; on every page. */
function Widgets({ user }: { user: PluginComponentProps["user"] }) {
  const { plugins } = usePlugins();
  const path = usePath();
  return (
    <div className="widgets">
      {plugins.flatMap((plugin) =>
        (plugin.config?.widgets ?? []).map((Widget, index) => (
          <ErrorBoundary key={`${plugin.url}#${index}`} label={`A widget of ${plugin.name}`} quiet>
            <Widget api={api} user={user} navigate={navigate} pluginId={plugin.id} path={path} params={{}} />
          </ErrorBoundary>
        )),
      )}
    </div>
  );
}

export function App() {
  const { user, logout } = useAuth();
  const { plugins, ready } = usePlugins();
  const path = usePath();

  const core = CORE_PAGES[path.replace(/\/+$/, "") || "/"];
  const found = core ? null : findPluginRoute(plugins, path);
  const title = core?.title ?? found?.route.title ?? found?.plugin.name ?? null;

  React.useEffect(() => {
    document.title = title ? `${title} · plugdock` : "plugdock panel";
  }, [title]);

  const signedIn = Boolean(user);
  React.useEffect(() => {
    if (signedIn && path === "/login") navigate("/", { replace: true });
  }, [signedIn, path]);

  if (user === undefined) {
    return (
      <p className="loading-screen" role="status">
        Loading…
      </p>
    );
  }

  if (user === null) {
    return (
      <>
        <LoginPage />
        <Widgets user={null} />
        <Toasts />
      </>
    );
  }

  const sdkUser = { id: user.id, username: user.username, role: user.role };
  let page: React.ReactNode;
  if (path === "/login") {
    page = null;
  } else if (core) {
    page = core.render();
  } else if (found) {
    const { plugin, route, params } = found;
    const Page = route.component;
    page =
      route.adminOnly && user.role !== "admin" ? (
        <NotFoundPage forbidden />
      ) : (
        <ErrorBoundary key={`${plugin.url}|${route.path}`} label={`The page of ${plugin.name}`}>
          <React.Suspense fallback={<p role="status">Loading…</p>}>
            <Page api={api} user={sdkUser} navigate={navigate} pluginId={plugin.id} path={path} params={params} />
          </React.Suspense>
        </ErrorBoundary>
      );
  } else if (!ready) {
    page = (
      <p className="muted" role="status">
        Loading plugins…
      </p>
    );
  } else {
    page = <NotFoundPage />;
  }

  return (
    <>
      <Layout user={user} onLogout={() => void logout()}>
        {page}
      </Layout>
      <Widgets user={sdkUser} />
      <Toasts />
    </>
  );
}
