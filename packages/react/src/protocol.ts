// The messages between the host's page and a plugin's sandboxed frame (docs/frontend.md, "The bridge").
//
// The frame says hello to window.parent with postMessage; the host's page answers only a frame it
// made (event.source is that iframe's contentWindow) with a MessagePort. Everything after
// that goes over the port: nothing else in the page can listen or speak on it.
import type { Method } from "./client";

/** A notice's kind, as @plugdock/sdk's notify() takes it. */
export type NoticeKind = "success" | "error" | "info";

/** The signed-in user, as the host tells PlugdockProvider and frames tell plugins (PlugdockUser). */
export interface PlugdockUser {
  id: number | string;
  username: string;
  role: "admin" | "user";
}

export const HELLO = "plugdock:frame-hello";
export const CONNECT = "plugdock:frame-connect";

/** Which part of the plugin a frame shows. */
export type FrameKind = "page" | "widget" | "describe";

/** The route of a page frame: the index in the plugin's routes, the path and its captures. */
export interface FrameRoute {
  /** Raised each time the host shows the page again: the plugin's page mounts afresh. */
  visit: number;
  index: number;
  path: string;
  params: Record<string, string>;
}

/** Sent with the port: what the frame renders first. */
export interface ConnectMessage {
  type: typeof CONNECT;
  /** The plugin's name, for messages ("The page of AI Chatbot stopped working"). */
  name: string;
  user: PlugdockUser | null;
  route: FrameRoute | null;
}

/** A request body that survives postMessage: JSON, or a FormData's entries (files are clonable). */
export type WireBody = { json: unknown } | { form: [string, string | File][] } | null;

/** Frame → shell, over the port. */
export type FrameMessage =
  | { type: "request"; id: number; method: Method; path: string; body: WireBody; headers: Record<string, string> }
  | { type: "notify"; text: string; kind: NoticeKind }
  | { type: "navigate"; to: string }
  | { type: "size"; height: number }
  | { type: "describe"; config: unknown }
  | { type: "describe-error"; message: string }
  | { type: "region"; left: number; top: number; right: number; bottom: number };

/** Shell → frame, over the port. */
export type ShellMessage =
  | { type: "reply"; id: number; ok: true; data: unknown }
  | { type: "reply"; id: number; ok: false; status: number; detail: unknown; message: string }
  | { type: "route"; route: FrameRoute }
  | { type: "user"; user: PlugdockUser | null };
