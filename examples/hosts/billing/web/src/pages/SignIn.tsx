import { type FormEvent, useState } from "react";

import { type Me, api } from "../api";

export function SignIn(props: { onSignedIn: (me: Me) => void }) {
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState<string | null>(null);
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setError(null);
    try {
      props.onSignedIn(await api<Me>("/api/auth/sign-in", "POST", { email, password }));
    } catch (e) {
      setError((e as Error).message);
    }
  };
  return (
    <form className="sign-in" onSubmit={submit}>
      <h1>Billing</h1>
      <label>
        Email
        <input value={email} onChange={(e) => setEmail(e.target.value)} autoComplete="username" />
      </label>
      <label>
        Password
        <input
          type="password"
          value={password}
          onChange={(e) => setPassword(e.target.value)}
          autoComplete="current-password"
        />
      </label>
      {error && <p className="error">{error}</p>}
      <button type="submit">Sign in</button>
    </form>
  );
}
