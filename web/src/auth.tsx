// The signed-in user. The session is an HttpOnly cookie the page's scripts cannot read;
// on start /auth/me tells whether it is still valid.
import * as React from "react";

import { clientHooks, setCurrentUser } from "@plugdock/sdk";

import { ApiError, type User, errorMessage, session, setSignedIn, setUnauthorizedHandler } from "./api";

/** Where older shells kept the bearer token; removed on start. */
const LEGACY_TOKEN_KEY = "plugdock_token";

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
    setSignedIn(next !== null); // whether a 401 to the shell's calls may mean the session ended
    setCurrentUser(next); // for plugins: the SDK's currentUser()/useUser(), and its client's 401s
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
    // Both clients call it on a 401 while signed in: the shell's (./api) and plugins' (the SDK's).
    let checking = false;
    const sessionMayHaveEnded = () => {
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
    };
    setUnauthorizedHandler(sessionMayHaveEnded);
    clientHooks.setUnauthorizedHandler(sessionMayHaveEnded);
    session
      .me()
      .then(setUser)
      .catch((error) => {
        if (!(error instanceof ApiError && error.status === 401)) setReason(errorMessage(error));
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
      problem = `Signing out may not have finished: ${errorMessage(error)}`;
    }
    setReason(problem);
    setUser(null);
  }, [setUser]);

  const value = React.useMemo(() => ({ user, login, logout, reason }), [user, login, logout, reason]);
  return <AuthContext.Provider value={value}>{children}</AuthContext.Provider>;
}
