// The billing API, called with the billing app's own session cookie (same origin).

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** fetch on the billing app's origin with its cookie. Every state-changing request also
 * carries X-Plugdock-CSRF: plugdock's routes ask it of cookie requests (a cross-site form
 * cannot send a custom header), and the billing routes ignore it. This is the host fetch
 * callback plugdock's React components are given (see plugdock.tsx). */
export function hostFetch(path: string, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  headers.set("Accept", "application/json");
  const method = (init.method ?? "GET").toUpperCase();
  if (method !== "GET" && method !== "HEAD") headers.set("X-Plugdock-CSRF", "1");
  return fetch(path, { ...init, headers, credentials: "same-origin" });
}

export async function api<T>(path: string, method = "GET", body?: unknown): Promise<T> {
  const init: RequestInit = { method };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers = { "Content-Type": "application/json" };
  }
  const answer = await hostFetch(path, init);
  if (!answer.ok) {
    let detail = answer.statusText;
    try {
      const found = (await answer.json()) as { detail?: unknown };
      detail = typeof found.detail === "string" ? found.detail : JSON.stringify(found.detail);
    } catch {
      // not JSON: keep the status text
    }
    throw new ApiError(answer.status, detail);
  }
  return (answer.status === 204 ? undefined : await answer.json()) as T;
}

export type Me = { id: number; email: string; is_admin: boolean };
export type Customer = { id: number; name: string; email: string };
export type Line = {
  description: string;
  quantity: number;
  unit_price_cents: number;
  amount_cents: number;
};
export type Payment = {
  id: number;
  invoice_id: number;
  invoice_number: string | null;
  amount_cents: number;
  method: string;
  paid_at: string;
};
export type Invoice = {
  id: number;
  number: string | null;
  status: "draft" | "open" | "paid";
  customer: Customer;
  lines: Line[];
  total_cents: number;
  paid_cents: number;
  created_at: string;
};
export type InvoiceDetail = Invoice & { payments: Payment[] };

export function money(cents: number): string {
  return (cents / 100).toLocaleString("en-US", { style: "currency", currency: "EUR" });
}
