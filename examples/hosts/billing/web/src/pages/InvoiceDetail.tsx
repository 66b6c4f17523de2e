import { useCallback, useEffect, useState } from "react";

import { type InvoiceDetail, type Me, api, money } from "../api";
import { Link } from "../router";

export function InvoiceDetailPage(props: { id: number; me: Me }) {
  const [invoice, setInvoice] = useState<InvoiceDetail | null>(null);
  const [error, setError] = useState<string | null>(null);
  const load = useCallback(() => {
    api<InvoiceDetail>(`/api/invoices/${props.id}`).then(setInvoice, (e: Error) =>
      setError(e.message),
    );
  }, [props.id]);
  useEffect(load, [load]);
  const act = async (action: "open" | "mark-paid") => {
    try {
      setInvoice(await api<InvoiceDetail>(`/api/invoices/${props.id}/${action}`, "POST"));
    } catch (e) {
      setError((e as Error).message);
    }
  };
  return (
    <section>
      <p>
        <Link to="/invoices">← Invoices</Link>
      </p>
      {error && <p className="error">{error}</p>}
      {invoice && (
        <>
          <h1>
            {invoice.number ?? `Draft #${invoice.id}`}{" "}
            <span className={`status ${invoice.status}`} data-testid="status">
              {invoice.status}
            </span>
          </h1>
          <p>
            {invoice.customer.name} &lt;{invoice.customer.email}&gt;
          </p>
          <table>
            <thead>
              <tr>
                <th>Description</th>
                <th className="num">Qty</th>
                <th className="num">Unit price</th>
                <th className="num">Amount</th>
              </tr>
            </thead>
            <tbody>
              {invoice.lines.map((line, i) => (
                <tr key={i}>
                  <td>{line.description}</td>
                  <td className="num">{line.quantity}</td>
                  <td className="num">{money(line.unit_price_cents)}</td>
                  <td className="num">{money(line.amount_cents)}</td>
                </tr>
              ))}
            </tbody>
            <tfoot>
              <tr>
                <td colSpan={3}>Total</td>
                <td className="num" data-testid="total">
                  {money(invoice.total_cents)}
                </td>
              </tr>
              <tr>
                <td colSpan={3}>Paid</td>
                <td className="num">{money(invoice.paid_cents)}</td>
              </tr>
            </tfoot>
          </table>
          {props.me.is_admin && invoice.status === "draft" && (
            <button type="button" onClick={() => act("open")}>
              Issue invoice
            </button>
          )}
          {props.me.is_admin && invoice.status === "open" && (
            <button type="button" onClick={() => act("mark-paid")}>
              Mark paid
            </button>
          )}
          {invoice.payments.length > 0 && (
            <>
              <h2>Payments</h2>
              <ul>
                {invoice.payments.map((p) => (
                  <li key={p.id}>
                    {money(p.amount_cents)} by {p.method} on {new Date(p.paid_at).toLocaleDateString()}
                  </li>
                ))}
              </ul>
            </>
          )}
        </>
      )}
    </section>
  );
}
