// What SMS Notifications adds to the panel's web UI (the contract: docs/frontend.md):
// an "SMS" entry for admins and its page (send a message, read the log).
import { defineAddon } from "@plugdock/sdk";

import MessagesPage from "./pages/MessagesPage";

export default defineAddon({
  id: "sms_notifications",
  nav: [{ label: "SMS", path: "/sms/messages", adminOnly: true, icon: "✉️" }],
  routes: [{ path: "/sms/messages", component: MessagesPage, adminOnly: true, title: "SMS" }],
});
