import { useEffect, useState } from "react";

import { type Payment, api, money } from "../api";
import { Link } from "../router";

export function Payments() {
  const [payments, setPayments] = useState<Payment[]>([]);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    api<Payment[]>("/api/payments").then(setPayments, (e: Error) => setError(e.message));
  }, []);
  return (
    <section>
      <h1>Payments</h1>
      {error && <p className="error">{error}</p>}
      <table data-testid="payments">
        <thead>
          <tr>
            <th>Date</th>
            <th>Invoice</th>
            <th>Method</th>
            <th className="num">Amount</th>
          </tr>
        </thead>
        <tbody>
          {payments.map((p) => (
            <tr key={p.id}>
              <td>{new Date(p.paid_at).toLocaleDateString()}</td>
              <td>
                <Link to={`/invoices/${p.invoice_id}`}>{p.invoice_number ?? `#${p.invoice_id}`}</Link>
              </td>
              <td>{p.method}</td>
              <td className="num">{money(p.amount_cents)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
