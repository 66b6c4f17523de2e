// The signed-in user: the token in localStorage ("plugdock_token"), checked with /auth/me.
import * as React from "react";

import { ApiError, type User, getToken, request, setToken, setUnauthorizedHandler } from "./api";

interface AuthState {
  /** undefined while the stored token is being checked; null when signed out. */
  user: User | null | undefined;
  login: (username: string, password: string) => Promise<void>;
  logout: () => void;
  /** Why the user was signed out (e.g. an expired token), shown on the sign-in page. */
  reason: string | null;
}

const AuthContext = React.createContext<AuthState>({
  user: null,
  login: async () => {},
  logout: () => {},
  reason: null,
});

export function useAuth(): AuthState {
  return React.useContext(AuthContext);
}

export function AuthProvider({ children }: { children: React.ReactNode }) {
  const [user, setUser] = React.useState<User | null | undefined>(getToken() ? undefined : null);
  const [reason, setReason] = React.useState<string | null>(null);

  const logout = React.useCallback(() => {
    setToken(null);
    setUser(null);
  }, []);

  React.useEffect(() => {
    setUnauthorizedHandler(() => {
      setToken(null);
      setUser(null);
      setReason("Your session has ended. Please sign in again.");
    });
    if (!getToken()) return;
    request<User>("GET", "/api/v1/auth/me")
      .then(setUser)
      .catch((error) => {
        if (!(error instanceof ApiError && error.status === 401)) setReason(String(error.message));
        setToken(null);
        setUser(null);
      });
  }, []);

  const login = React.useCallback(async (username: string, password: string) => {
    const token = await request<{ access_token: string }>("POST", "/api/v1/auth/login", {
      username,
      password,
    });
    setToken(token.access_token);
    const me = await request<User>("GET", "/api/v1/auth/me");
    setReason(null);
    setUser(me);
  }, []);

  const value = React.useMemo(() => ({ user, login, logout, reason }), [user, login, logout, reason]);
  return <AuthContext.Provider value={value}>{children}</AuthContext.Provider>;
}
