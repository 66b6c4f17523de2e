// What the AI chatbot adds to the panel's web UI (the contract: docs/frontend.md):
// a "Chats" entry for admins, its page, and the chat bubble on every page.
//
// `plugdock pack` bundles this file and everything it imports into frontend/dist/addon.js;
// react and @plugdock/sdk come from the panel (one React, one SDK for all).
import { type PluginComponentProps, defineAddon } from "@plugdock/sdk";
import { createElement } from "react";

import AIChatBot from "./components/AIChatBot";
import ChatsPage from "./pages/ChatsPage";

/** The bubble ignores the panel's props: it talks to the public chat API with its own token. */
function ChatBubble(_props: PluginComponentProps) {
  return createElement(AIChatBot);
}

export default defineAddon({
  id: "ai_chatbot",
  nav: [{ label: "Chats", path: "/support/chats", adminOnly: true, icon: "💬" }],
  routes: [{ path: "/support/chats", component: ChatsPage, adminOnly: true, title: "Chats" }],
  widgets: [ChatBubble],
});
