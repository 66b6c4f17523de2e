// Users (admins): who can sign in, with which role; create, promote/demote, deactivate.
// Deactivating ends the user's sessions at once; the last active admin cannot be removed.
import * as React from "react";

import { type User, accounts, errorMessage } from "../api";
import { useAuth } from "../auth";
import { Notice, type NoticeValue } from "@plugdock/react";
import { formatDate } from "../format";

export function UsersPage() {
  const { user: me } = useAuth();
  const [rows, setRows] = React.useState<User[] | null>(null);
  const [notice, setNotice] = React.useState<NoticeValue | null>(null);
  const [busy, setBusy] = React.useState<number | null>(null);
  const [name, setName] = React.useState("");
  const [password, setPassword] = React.useState("");
  const [role, setRole] = React.useState<User["role"]>("user");
  const [creating, setCreating] = React.useState(false);

  const load = React.useCallback(async () => {
    try {
      setRows(await accounts.list());
    } catch (e) {
      setNotice({ kind: "error", text: `Could not load the users: ${errorMessage(e)}` });
    }
  }, []);

  React.useEffect(() => {
    // eslint-disable-next-line react-hooks/set-state-in-effect -- state is set only after an await (a known false positive: React issue 34905)
    void load();
  }, [load]);

  if (me?.role !== "admin") {
    return <p className="notice notice-error">Only admins manage users.</p>;
  }

  const change = async (row: User, update: { role?: User["role"]; is_active?: boolean }, done: string) => {
    setBusy(row.id);
    setNotice(null);
    try {
      await accounts.update(row.id, update);
      setNotice({ kind: "success", text: done });
      await load();
    } catch (e) {
      setNotice({ kind: "error", text: errorMessage(e) });
    } finally {
      setBusy(null);
    }
  };

  const create = async (event: React.FormEvent) => {
    event.preventDefault();
    if (creating) return;
    setCreating(true);
    setNotice(null);
    try {
      const made = await accounts.create(name.trim(), password, role);
      setNotice({ kind: "success", text: `Created ${made.username} (${made.role}).` });
      setName("");
      setPassword("");
      await load();
    } catch (e) {
      setNotice({ kind: "error", text: errorMessage(e) });
    } finally {
      setCreating(false);
    }
  };

  return (
    <section aria-labelledby="users-title">
      <h1 id="users-title">Users</h1>
      {notice && <Notice notice={notice} onDismiss={() => setNotice(null)} />}
      {!rows && (
        <p className="muted" role="status">
          Loading…
        </p>
      )}
      {rows && (
        <div className="table-wrap card">
          <table className="table">
            <caption className="visually-hidden">Users</caption>
            <thead>
              <tr>
                <th scope="col">User</th>
                <th scope="col">Role</th>
                <th scope="col">Status</th>
                <th scope="col">Created</th>
                <th scope="col">Actions</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((row) => {
                const other = row.role === "admin" ? "user" : "admin";
                return (
                  <tr key={row.id} aria-busy={busy === row.id}>
                    <th scope="row">
                      {row.username}
                      {row.id === me.id && <span className="muted"> (you)</span>}
                    </th>
                    <td>
                      <span className="role-badge">{row.role}</span>
                    </td>
                    <td>{row.is_active ? "Active" : "Deactivated"}</td>
                    <td>{formatDate(row.created_at)}</td>
                    <td className="actions">
                      <button
                        type="button"
                        className="button button-small"
                        disabled={busy !== null}
                        aria-label={`Make ${row.username} ${other}`}
                        onClick={() => void change(row, { role: other }, `${row.username} is now ${other}.`)}
                      >
                        Make {other}
                      </button>{" "}
                      <button
                        type="button"
                        className={row.is_active ? "button button-small button-danger" : "button button-small"}
                        disabled={busy !== null}
                        aria-label={`${row.is_active ? "Deactivate" : "Activate"} ${row.username}`}
                        onClick={() =>
                          void change(
                            row,
                            { is_active: !row.is_active },
                            row.is_active
                              ? `${row.username} is deactivated and signed out everywhere.`
                              : `${row.username} can sign in again.`,
                          )
                        }
                      >
                        {row.is_active ? "Deactivate" : "Activate"}
                      </button>
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
      <form
        className="card"
        style={{ display: "grid", gap: "0.4rem", maxWidth: "28rem", marginTop: "1.5rem" }}
        onSubmit={(event) => void create(event)}
        aria-labelledby="new-user-title"
      >
        <h2 id="new-user-title">Add a user</h2>
        <label htmlFor="new-user-name">Username</label>
        <input id="new-user-name" required value={name} onChange={(e) => setName(e.target.value)} />
        <label htmlFor="new-user-password">Password</label>
        <input
          id="new-user-password"
          type="password"
          autoComplete="new-password"
          required
          minLength={8}
          value={password}
          onChange={(e) => setPassword(e.target.value)}
        />
        <label htmlFor="new-user-role">Role</label>
        <select id="new-user-role" value={role} onChange={(e) => setRole(e.target.value as User["role"])}>
          <option value="user">user</option>
          <option value="admin">admin</option>
        </select>
        <button type="submit" className="button button-primary" disabled={creating}>
          {creating ? "Adding…" : "Add user"}
        </button>
      </form>
    </section>
  );
}
