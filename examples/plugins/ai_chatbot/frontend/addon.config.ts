// What the AI chatbot adds to the host's web UI: a "Chats" entry for admins, its page,
// and the chat bubble widget.
import type { ComponentType } from "react";

import AIChatBot from "./components/AIChatBot";
import type { PlugdockApi } from "./lib/api";
import ChatsPage from "./pages/ChatsPage";

interface AddonConfig {
  id: string;
  nav: { label: string; path: string; adminOnly?: boolean }[];
  /** Pages get the host's API helper as `api`. */
  routes: { path: string; component: ComponentType<{ api?: PlugdockApi }> }[];
  /** Rendered once on every page of the host, without props. */
  widgets: ComponentType[];
}

const config: AddonConfig = {
  id: "ai_chatbot",
  nav: [{ label: "Chats", path: "/support/chats", adminOnly: true }],
  routes: [{ path: "/support/chats", component: ChatsPage }],
  widgets: [AIChatBot],
};

export default config;
