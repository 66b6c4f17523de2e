// What the AI chatbot adds to the panel's web UI (the contract: docs/frontend.md):
// a "Chats" entry for admins, its page, and the chat bubble on every page.
//
// `plugdock pack` bundles this file and everything it imports into frontend/dist/addon.js;
// react, react-dom and react/jsx-runtime come from the panel (one React for all).
import { type ComponentType, createElement } from "react";

import AIChatBot from "./components/AIChatBot";
import type { PlugdockApi } from "./lib/api";
import ChatsPage from "./pages/ChatsPage";

/** What the panel passes to every page and widget. */
export interface PluginComponentProps {
  api: PlugdockApi;
  user: { id: number; username: string; role: "admin" | "user" } | null;
  navigate: (to: string) => void;
  pluginId: string;
  path: string;
  params: Record<string, string>;
}

export interface AddonConfig {
  id?: string;
  nav?: { label: string; path: string; adminOnly?: boolean; icon?: string }[];
  routes?: {
    path: string;
    component: ComponentType<PluginComponentProps>;
    adminOnly?: boolean;
    title?: string;
  }[];
  widgets?: ComponentType<PluginComponentProps>[];
}

/** The bubble ignores the panel's props: it talks to the public chat API with its own token. */
function ChatBubble(_props: PluginComponentProps) {
  return createElement(AIChatBot);
}

const config: AddonConfig = {
  id: "ai_chatbot",
  nav: [{ label: "Chats", path: "/support/chats", adminOnly: true, icon: "💬" }],
  routes: [{ path: "/support/chats", component: ChatsPage, adminOnly: true, title: "Chats" }],
  widgets: [ChatBubble],
};

export default config;
