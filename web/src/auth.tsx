// The signed-in user. The session is an HttpOnly cookie the page's scripts cannot read;
// on start /auth/me tells whether it is still valid.
import * as React from "react";

import { clientHooks, setCurrentUser } from "@plugdock/sdk";

import { ApiError, LEGACY_TOKEN_KEY, type User, session } from "./api";

interface AuthState {
  /** undefined while the session is being checked; null when signed out. */
  user: User | null | undefined;
  login: (username: string, password: string) => Promise<void>;
  logout: () => Promise<void>;
  /** Why the user was signed out (e.g. an expired session), shown on the sign-in page. */
  reason: string | null;
}

const AuthContext = React.createContext<AuthState>({
  user: null,
  login: async () => {},
  logout: async () => {},
  reason: null,
});

export function useAuth(): AuthState {
  return React.useContext(AuthContext);
}

export function AuthProvider({ children }: { children: React.ReactNode }) {
  const [user, setUserState] = React.useState<User | null | undefined>(undefined);
  const [reason, setReason] = React.useState<string | null>(null);

  const setUser = React.useCallback((next: User | null) => {
    setCurrentUser(next); // what plugins read with the SDK's currentUser()/useUser()
    setUserState(next);
  }, []);

  React.useEffect(() => {
    try {
      localStorage.removeItem(LEGACY_TOKEN_KEY); // a token an older shell left readable
    } catch {
      // storage disabled: nothing was stored
    }
    // A 401 from a plugin's own route (its own token, say) must not sign the user out:
    // ask the panel whether the session really ended. While asking, further 401s wait.
    let checking = false;
    clientHooks.setUnauthorizedHandler(() => {
      if (checking) return;
      checking = true;
      session
        .me()
        .then(setUser)
        .catch((error) => {
          if (!(error instanceof ApiError && error.status === 401)) return; // offline: keep the user
          setUser(null);
          setReason("Your session has ended. Please sign in again.");
        })
        .finally(() => {
          checking = false;
        });
    });
    session
      .me()
      .then(setUser)
      .catch((error) => {
        if (!(error instanceof ApiError && error.status === 401)) setReason(String(error.message));
        setUser(null);
      });
  }, [setUser]);

  const login = React.useCallback(
    async (username: string, password: string) => {
      await session.signIn(username, password);
      const me = await session.me();
      setReason(null);
      setUser(me);
    },
    [setUser],
  );

  const logout = React.useCallback(async () => {
    let problem: string | null = null;
    try {
      await session.signOut();
    } catch (error) {
      problem = `Signing out may not have finished: ${String((error as Error).message)}`;
    }
    setReason(problem);
    setUser(null);
  }, [setUser]);

  const value = React.useMemo(() => ({ user, login, logout, reason }), [user, login, logout, reason]);
  return <AuthContext.Provider value={value}>{children}</AuthContext.Provider>;
}
