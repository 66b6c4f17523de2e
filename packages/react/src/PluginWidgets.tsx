// <PluginWidgets />: the installed plugins' floating widgets (a chat bubble), each in a
// transparent sandboxed frame clipped to what it shows, on every page the host renders it.
import * as React from "react";

import { ErrorBoundary } from "./ErrorBoundary";
import { WidgetFrame } from "./frames";
import type { FrameRoute } from "./protocol";
import { usePlugdock } from "./provider";

export interface PluginWidgetsProps {
  /** The host's current path, told to widgets (default: the address bar's when rendered; pass
   * your router's so widgets hear of every navigation). */
  path?: string;
}

export function PluginWidgets({ path }: PluginWidgetsProps) {
  const { plugins, user, corePages, navigate, pluginApi } = usePlugdock();
  // (No window in a server render: the widgets are framed in the browser anyway.)
  const current = path ?? (typeof window === "undefined" ? "/" : window.location.pathname);
  const route = React.useMemo<FrameRoute>(() => ({ visit: 0, index: -1, path: current, params: {} }), [current]);
  return (
    <div className="plugdock-widgets">
      {plugins.flatMap((plugin) =>
        (plugin.config?.widgets ?? []).map((Widget, index) =>
          Widget ? (
            <ErrorBoundary key={`${plugin.url}#${index}`} label={`A widget of ${plugin.name}`} quiet>
              <Widget api={pluginApi} user={user} navigate={navigate} pluginId={plugin.id} path={current} params={{}} />
            </ErrorBoundary>
          ) : (
            <WidgetFrame
              key={`${plugin.frameUrl}#${index}`}
              index={index}
              pluginName={plugin.name}
              frameUrl={plugin.frameUrl}
              grant={plugin.grant}
              ownPages={(plugin.config?.routes ?? []).map((r) => r.path)}
              corePages={corePages}
              user={user}
              route={route}
            />
          ),
        ),
      )}
    </div>
  );
}
