// The signed-in user, as the shell knows it: read it, follow its changes, or use it in a
// component. The shell sets it after sign-in, sign-out, and when a session ends.
import * as React from "react";

import { clientHooks } from "./client";

/** The signed-in user as plugins see it. */
export interface SdkUser {
  id: number;
  username: string;
  role: "admin" | "user";
}

let user: SdkUser | null = null;
const listeners = new Set<() => void>();

/** The signed-in user, or null (signed out, or the session is still being checked). */
export function currentUser(): SdkUser | null {
  return user;
}

/** Call `listener` whenever the user signs in or out; returns the unsubscribe function. */
export function onUserChange(listener: (user: SdkUser | null) => void): () => void {
  const wrapped = () => listener(user);
  listeners.add(wrapped);
  return () => {
    listeners.delete(wrapped);
  };
}

/** The signed-in user in a React component (re-renders when it changes). */
export function useUser(): SdkUser | null {
  return React.useSyncExternalStore(subscribe, currentUser, currentUser);
}

function subscribe(callback: () => void): () => void {
  listeners.add(callback);
  return () => {
    listeners.delete(callback);
  };
}

/**
 * The shell sets the user here (and so tells the client whether a 401 ends a session).
 * @internal
 */
export function setCurrentUser(next: SdkUser | null): void {
  const same =
    next === user || (next && user && next.id === user.id && next.username === user.username && next.role === user.role);
  clientHooks.setSignedIn(next !== null);
  if (same) return;
  user = next ? { id: next.id, username: next.username, role: next.role } : null;
  for (const listener of [...listeners]) listener();
}
