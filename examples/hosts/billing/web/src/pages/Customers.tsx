import { type FormEvent, useCallback, useEffect, useState } from "react";

import { type Customer, type Me, api } from "../api";

export function Customers(props: { me: Me }) {
  const [customers, setCustomers] = useState<Customer[]>([]);
  const [name, setName] = useState("");
  const [email, setEmail] = useState("");
  const [error, setError] = useState<string | null>(null);
  const load = useCallback(() => {
    api<Customer[]>("/api/customers").then(setCustomers, (e: Error) => setError(e.message));
  }, []);
  useEffect(load, [load]);
  const add = async (event: FormEvent) => {
    event.preventDefault();
    try {
      await api("/api/customers", "POST", { name, email });
      setName("");
      setEmail("");
      load();
    } catch (e) {
      setError((e as Error).message);
    }
  };
  return (
    <section>
      <h1>Customers</h1>
      {error && <p className="error">{error}</p>}
      <table data-testid="customers">
        <thead>
          <tr>
            <th>Name</th>
            <th>Email</th>
          </tr>
        </thead>
        <tbody>
          {customers.map((c) => (
            <tr key={c.id}>
              <td>{c.name}</td>
              <td>{c.email}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {props.me.is_admin && (
        <form className="inline" onSubmit={add}>
          <input placeholder="Name" value={name} onChange={(e) => setName(e.target.value)} />
          <input placeholder="Email" value={email} onChange={(e) => setEmail(e.target.value)} />
          <button type="submit">Add customer</button>
        </form>
      )}
    </section>
  );
}
