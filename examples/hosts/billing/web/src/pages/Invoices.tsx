import { useEffect, useState } from "react";

import { type Invoice, api, money } from "../api";
import { Link } from "../router";

export function Invoices() {
  const [invoices, setInvoices] = useState<Invoice[]>([]);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    api<Invoice[]>("/api/invoices").then(setInvoices, (e: Error) => setError(e.message));
  }, []);
  return (
    <section>
      <h1>Invoices</h1>
      {error && <p className="error">{error}</p>}
      <table data-testid="invoices">
        <thead>
          <tr>
            <th>Number</th>
            <th>Customer</th>
            <th>Status</th>
            <th className="num">Total</th>
            <th className="num">Paid</th>
          </tr>
        </thead>
        <tbody>
          {invoices.map((invoice) => (
            <tr key={invoice.id}>
              <td>
                <Link to={`/invoices/${invoice.id}`}>{invoice.number ?? `Draft #${invoice.id}`}</Link>
              </td>
              <td>{invoice.customer.name}</td>
              <td>
                <span className={`status ${invoice.status}`}>{invoice.status}</span>
              </td>
              <td className="num">{money(invoice.total_cents)}</td>
              <td className="num">{money(invoice.paid_cents)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
