// The shell: signs the user in, then routes between the core pages and the plugins' pages.
import type { PluginComponentProps } from "@plugdock/sdk";
// eslint-disable-next-line no-restricted-imports -- handed to plugin pages and widgets as props.api, never called here
import { api } from "@plugdock/sdk";
import * as React from "react";

import { useAuth } from "./auth";
import {
  ErrorBoundary,
  EventDeliveries,
  type FrameRoute,
  InstalledPlugins,
  type LoadedPlugin,
  Marketplace,
  PageFrame,
  WidgetFrame,
  usePlugins,
} from "@plugdock/react";

import { Layout } from "./components/Layout";
import { Toasts } from "./components/Toasts";
import { DashboardPage } from "./pages/DashboardPage";
import { LoginPage } from "./pages/LoginPage";
import { NotFoundPage } from "./pages/NotFoundPage";
import { UsersPage } from "./pages/UsersPage";
import { matchPath, navigate, usePath } from "./router";

const CORE_PAGES: Record<string, { title: string; render: () => React.ReactNode }> = {
  "/": { title: "Dashboard", render: () => <DashboardPage /> },
  "/marketplace": { title: "Marketplace", render: () => <Marketplace /> },
  "/installed": { title: "Installed plugins", render: () => <InstalledPlugins /> },
  "/users": { title: "Users", render: () => <UsersPage /> },
  "/events": { title: "Event deliveries", render: () => <EventDeliveries /> },
};

/** Where a framed plugin may send the shell besides its own pages. */
export const CORE_PATHS = [...Object.keys(CORE_PAGES), "/login"];

function findPluginRoute(plugins: LoadedPlugin[], path: string) {
  for (const plugin of plugins) {
    for (const [index, route] of (plugin.config?.routes ?? []).entries()) {
      const params = matchPath(route.path, path);
      if (params) return { plugin, route, index, params };
    }
  }
  return null;
}

function ownPages(plugin: LoadedPlugin): string[] {
  return (plugin.config?.routes ?? []).map((route) => route.path);
}

/** A route object that changes only when its contents do (each change is a message to the frame). */
function useFrameRoute(visit: number, index: number, path: string, params: Record<string, string>): FrameRoute {
  const key = JSON.stringify([visit, index, path, params]);
  // eslint-disable-next-line react-hooks/exhaustive-deps -- keyed by the contents, not the object
  return React.useMemo(() => ({ visit, index, path, params }), [key]);
}

/** The plugins' widgets: a frame each (or, for ui:same-origin plugins, in this page); on every page. */
function Widgets({ user }: { user: PluginComponentProps["user"] }) {
  const { plugins } = usePlugins();
  const path = usePath();
  const route = useFrameRoute(0, -1, path, {});
  return (
    <div className="widgets">
      {plugins.flatMap((plugin) =>
        (plugin.config?.widgets ?? []).map((Widget, index) =>
          Widget ? (
            <ErrorBoundary key={`${plugin.url}#${index}`} label={`A widget of ${plugin.name}`} quiet>
              <Widget api={api} user={user} navigate={navigate} pluginId={plugin.id} path={path} params={{}} />
            </ErrorBoundary>
          ) : (
            <WidgetFrame
              key={`${plugin.frameUrl}#${index}`}
              index={index}
              pluginName={plugin.name}
              frameUrl={plugin.frameUrl}
              grant={plugin.grant}
              ownPages={ownPages(plugin)}
              corePages={CORE_PATHS}
              user={user}
              route={route}
            />
          ),
        ),
      )}
    </div>
  );
}

/** The framed plugin page the shell shows now. */
interface ActivePage {
  plugin: LoadedPlugin;
  index: number;
  path: string;
  params: Record<string, string>;
  title: string;
}

interface Shown {
  active: boolean;
  visit: number;
  index: number;
  path: string;
  params: Record<string, string>;
}

/** One plugin's page frame: told about each route change while shown, kept while hidden. */
function FramedPage(props: { plugin: LoadedPlugin; page: ActivePage | null; user: PluginComponentProps["user"] }) {
  const { plugin, page, user } = props;
  const [shown, setShown] = React.useState<Shown>({ active: false, visit: 0, index: 0, path: "", params: {} });
  let current = shown;
  if (page) {
    const same = shown.active && shown.index === page.index && shown.path === page.path;
    if (!same || JSON.stringify(shown.params) !== JSON.stringify(page.params)) {
      const visit = shown.active ? shown.visit : shown.visit + 1; // shown again: a fresh mount
      current = { active: true, visit, index: page.index, path: page.path, params: page.params };
      setShown(current);
    }
  } else if (shown.active) {
    current = { ...shown, active: false };
    setShown(current);
  }
  const route = useFrameRoute(current.visit, current.index, current.path, current.params);
  return (
    <PageFrame
      pluginName={plugin.name}
      frameUrl={plugin.frameUrl}
      grant={plugin.grant}
      ownPages={ownPages(plugin)}
      corePages={CORE_PATHS}
      user={user}
      route={route}
      title={page?.title ?? plugin.name}
      hidden={!page}
    />
  );
}

/** How many framed plugins keep their page frame while another page shows. */
const KEPT_FRAMES = 4;

/**
 * The framed plugins' pages: a frame per plugin, kept (hidden) after the user leaves it, so
 * coming back is a message to a loaded frame rather than a new document, React and bundle.
 */
function FramedPages({ active, user }: { active: ActivePage | null; user: PluginComponentProps["user"] }) {
  const { plugins } = usePlugins();
  const [kept, setKept] = React.useState<string[]>([]);
  const url = active?.plugin.frameUrl;
  let list = kept;
  if (url && list[list.length - 1] !== url) {
    list = [...list.filter((u) => u !== url), url].slice(-KEPT_FRAMES);
    setKept(list);
  }
  return (
    <>
      {plugins
        .filter((plugin) => list.includes(plugin.frameUrl))
        .map((plugin) => (
          <FramedPage
            key={plugin.frameUrl}
            plugin={plugin}
            page={active?.plugin.frameUrl === plugin.frameUrl ? active : null}
            user={user}
          />
        ))}
    </>
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

  // One object per signed-in user: frames are sent the user again only when it changes.
  const sdkUser = React.useMemo(
    () => (user ? { id: user.id, username: user.username, role: user.role } : null),
    [user?.id, user?.username, user?.role], // eslint-disable-line react-hooks/exhaustive-deps -- by value
  );
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

  let page: React.ReactNode;
  let framed: ActivePage | null = null;
  if (path === "/login") {
    page = null;
  } else if (core) {
    page = core.render();
  } else if (found) {
    const { plugin, route, index, params } = found;
    const Page = route.component;
    if (!Page && !(route.adminOnly && user.role !== "admin")) {
      framed = { plugin, index, path, params, title: route.title ?? plugin.name };
    }
    page =
      route.adminOnly && user.role !== "admin" ? (
        <NotFoundPage forbidden />
      ) : !Page ? null : (
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
        <FramedPages active={framed} user={sdkUser} />
      </Layout>
      <Widgets user={sdkUser} />
      <Toasts />
    </>
  );
}
