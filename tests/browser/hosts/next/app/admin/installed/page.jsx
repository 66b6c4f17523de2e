"use client";
import { InstalledPlugins } from "@plugdock/react";

import { pluginHref } from "../../acme";

export default function InstalledPage() {
  return <InstalledPlugins marketplacePath="/admin/plugins" pagePath={pluginHref} />;
}
