// <PluginPage plugin="ai_chatbot" path="/support/chats" />: a plugin's page in the host's UI,
// in a sandboxed frame as the reference panel shows it, inside an error boundary.
import * as React from "react";

import { ErrorBoundary } from "./ErrorBoundary";
import { PageFrame } from "./frames";
import { matchPath } from "./paths";
import type { LoadedPlugin } from "./plugins";
import type { FrameRoute } from "./protocol";
import { usePlugdock } from "./provider";

export interface PluginPageProps {
  /** The plugin's id. */
  plugin: string;
  /** The path the user is on (one of the plugin's page patterns matches it). */
  path: string;
  /** Shown while the plugin list loads. */
  fallback?: React.ReactNode;
}

function findRoute(plugin: LoadedPlugin, path: string) {
  for (const [index, route] of (plugin.config?.routes ?? []).entries()) {
    const params = matchPath(route.path, path);
    if (params) return { route, index, params };
  }
  return null;
}

function Message({ children }: { children: React.ReactNode }) {
  return (
    <div className="plugdock">
      <p className="muted" role="status">
        {children}
      </p>
    </div>
  );
}

export function PluginPage({ plugin: pluginId, path, fallback }: PluginPageProps) {
  const { plugins, ready, user, corePages, navigate, pluginApi } = usePlugdock();
  const plugin = plugins.find((p) => p.id === pluginId);
  const found = plugin ? findRoute(plugin, path) : null;
  const key = found ? JSON.stringify([found.index, path, found.params]) : "";
  // A route object that changes only when its contents do (each change is a message to the frame).
  const route = React.useMemo<FrameRoute | null>(
    () => (found ? { visit: 1, index: found.index, path, params: found.params } : null),
    [key], // eslint-disable-line react-hooks/exhaustive-deps -- keyed by the contents
  );
  if (!plugin) return ready ? <Message>No plugin {pluginId} is installed here.</Message> : (fallback ?? <Message>Loading…</Message>);
  if (plugin.error) {
    return (
      <div className="plugdock">
        <div className="notice notice-error" role="alert">
          The page of {plugin.name} could not be loaded: {plugin.error}
        </div>
      </div>
    );
  }
  if (!found || !route) return <Message>{plugin.name} has no page at {path}.</Message>;
  if (found.route.adminOnly && user?.role !== "admin") return <Message>This page is for admins only.</Message>;
  const Page = found.route.component;
  const ownPages = (plugin.config?.routes ?? []).map((r) => r.path);
  return (
    <ErrorBoundary key={`${plugin.frameUrl}|${found.route.path}`} label={`The page of ${plugin.name}`}>
      {Page ? (
        <React.Suspense fallback={<Message>Loading…</Message>}>
          <Page api={pluginApi} user={user} navigate={navigate} pluginId={plugin.id} path={path} params={found.params} />
        </React.Suspense>
      ) : (
        <PageFrame
          pluginName={plugin.name}
          frameUrl={plugin.frameUrl}
          grant={plugin.grant}
          ownPages={ownPages}
          corePages={corePages}
          user={user}
          route={route}
          title={found.route.title ?? plugin.name}
          hidden={false}
        />
      )}
    </ErrorBoundary>
  );
}
