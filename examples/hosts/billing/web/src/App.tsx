import { useEffect, useState } from "react";

import { ApiError, type Me, api } from "./api";
import { Customers } from "./pages/Customers";
import { InvoiceDetailPage } from "./pages/InvoiceDetail";
import { Invoices } from "./pages/Invoices";
import { Payments } from "./pages/Payments";
import { SignIn } from "./pages/SignIn";
import { PlugdockRoutes, PlugdockShell, usePlugdockNav } from "./plugdock";
import { Link, navigate, usePath } from "./router";

const NAV = [
  { to: "/customers", label: "Customers" },
  { to: "/invoices", label: "Invoices" },
  { to: "/payments", label: "Payments" },
];

export function App() {
  const [me, setMe] = useState<Me | null | undefined>(undefined);
  useEffect(() => {
    api<Me>("/api/auth/me").then(setMe, (e: unknown) => {
      if (e instanceof ApiError && e.status === 401) setMe(null);
      else throw e;
    });
  }, []);
  if (me === undefined) return <p className="page">Loading…</p>;
  if (me === null) return <SignIn onSignedIn={setMe} />;
  const signOut = async () => {
    await api("/api/auth/sign-out", "POST");
    setMe(null);
    navigate("/");
  };
  return (
    <PlugdockShell me={me}>
      <Shell me={me} onSignOut={signOut} />
    </PlugdockShell>
  );
}

function Shell(props: { me: Me; onSignOut: () => void }) {
  const path = usePath();
  const nav = [...NAV, ...usePlugdockNav()];
  return (
    <div className="layout">
      <nav className="sidebar" aria-label="Billing">
        <strong className="brand">Billing</strong>
        {nav.map((item) => (
          <Link key={item.to} to={item.to} className={path.startsWith(item.to) ? "active" : ""}>
            {item.label}
          </Link>
        ))}
        <div className="who">
          <span data-testid="me">{props.me.email}</span>
          {props.me.is_admin && <span className="badge">admin</span>}
          <button type="button" onClick={props.onSignOut}>
            Sign out
          </button>
        </div>
      </nav>
      <main className="page">
        <Page path={path} me={props.me} />
      </main>
    </div>
  );
}

function Page(props: { path: string; me: Me }) {
  const { path, me } = props;
  const invoice = /^\/invoices\/(\d+)$/.exec(path);
  if (invoice) return <InvoiceDetailPage id={Number(invoice[1])} me={me} />;
  if (path.startsWith("/invoices")) return <Invoices />;
  if (path.startsWith("/payments")) return <Payments />;
  return <PlugdockRoutes path={path} fallback={<Customers me={me} />} />;
}
