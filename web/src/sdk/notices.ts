// Notices ("toasts"): short messages the shell shows in a corner of every page, from its
// own code or a plugin's. Success and info notices go away by themselves; errors stay
// until dismissed.
import * as React from "react";

export type NoticeKind = "success" | "error" | "info";

export interface Notice {
  id: number;
  kind: NoticeKind;
  text: string;
}

/** How long a success or info notice stays, in milliseconds. */
export const NOTICE_MS = 6000;
/** At most this many notices at once: the oldest goes first. */
const MAX_NOTICES = 5;

let notices: readonly Notice[] = [];
let nextId = 1;
const listeners = new Set<() => void>();

function publish(next: readonly Notice[]): void {
  notices = next;
  for (const listener of [...listeners]) listener();
}

/** Inside a plugin's frame, notices go to the shell, which shows them. */
let sink: ((text: string, kind: NoticeKind) => void) | null = null;

/**
 * The frame's runtime sends the plugin's notices to the shell.
 * @internal
 */
export function setNoticeSink(next: ((text: string, kind: NoticeKind) => void) | null): void {
  sink = next;
}

/** Show a notice; returns its id (for `dismissNotice`). */
export function notify(text: string, kind: NoticeKind = "info"): number {
  const id = nextId++;
  if (sink) {
    sink(String(text), kind);
    return id;
  }
  publish([...notices, { id, kind, text: String(text) }].slice(-MAX_NOTICES));
  if (kind !== "error" && typeof window !== "undefined") window.setTimeout(() => dismissNotice(id), NOTICE_MS);
  return id;
}

export function dismissNotice(id: number): void {
  if (notices.some((notice) => notice.id === id)) publish(notices.filter((notice) => notice.id !== id));
}

/** The notices showing now, oldest first (the shell renders them). */
export function currentNotices(): readonly Notice[] {
  return notices;
}

/** The notices in a React component (re-renders when one comes or goes). */
export function useNotices(): readonly Notice[] {
  return React.useSyncExternalStore(subscribe, currentNotices, currentNotices);
}

function subscribe(callback: () => void): () => void {
  listeners.add(callback);
  return () => {
    listeners.delete(callback);
  };
}
