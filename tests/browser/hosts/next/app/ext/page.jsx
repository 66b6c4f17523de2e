"use client";
// Every plugin page: /ext?path=/support/chats renders the plugin whose route matches.
import { PluginPage, matchPath, usePluginRoutes } from "@plugdock/react";
import { useSearchParams } from "next/navigation";
import { Suspense } from "react";

function Page() {
  const path = useSearchParams().get("path") ?? "/";
  const found = usePluginRoutes().find((route) => matchPath(route.path, path));
  if (!found) return <p>No plugin page at {path}.</p>;
  return <PluginPage plugin={found.pluginId} path={path} />;
}

export default function ExtPage() {
  return (
    <Suspense fallback={<p>Loading…</p>}>
      <Page />
    </Suspense>
  );
}
