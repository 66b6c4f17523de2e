// The marketplace: every plugin the source offers, installed or not; admins install and
// uninstall here, and the plugin's pages appear or disappear without a reload.
import * as React from "react";

import {
  type CatalogItem,
  type InstallResponse,
  type UninstallResponse,
  api,
  errorMessage,
} from "../api";
import { useAuth } from "../auth";
import { ConfirmDialog } from "../components/ConfirmDialog";
import { Notice, type NoticeValue } from "../components/Notice";
import { usePlugins } from "../plugins";

export function formatPrice(price: number): string {
  if (!price) return "Free";
  return new Intl.NumberFormat(undefined, { style: "currency", currency: "USD" }).format(price);
}

function PluginIcon({ icon, name }: { icon: string; name: string }) {
  if (/^(https?:\/\/|\/|data:image\/)/.test(icon)) {
    return <img className="plugin-icon" src={icon} alt="" width={48} height={48} />;
  }
  return (
    <span className="plugin-icon" aria-hidden="true">
      {icon || name.slice(0, 1).toUpperCase()}
    </span>
  );
}

type Busy = { id: string; action: "install" | "uninstall" } | null;

export function MarketplacePage() {
  const { user } = useAuth();
  const { refresh: refreshPlugins } = usePlugins();
  const isAdmin = user?.role === "admin";
  const [items, setItems] = React.useState<CatalogItem[] | null>(null);
  const [loadError, setLoadError] = React.useState<string | null>(null);
  const [busy, setBusy] = React.useState<Busy>(null);
  const [notice, setNotice] = React.useState<NoticeValue | null>(null);
  const [confirming, setConfirming] = React.useState<CatalogItem | null>(null);
  const [query, setQuery] = React.useState("");
  const [category, setCategory] = React.useState("all");

  const load = React.useCallback(async () => {
    try {
      setItems(await api.get<CatalogItem[]>("/api/v1/marketplace/plugins"));
      setLoadError(null);
    } catch (e) {
      setLoadError(errorMessage(e));
    }
  }, []);

  React.useEffect(() => {
    void load();
  }, [load]);

  const install = async (item: CatalogItem) => {
    setBusy({ id: item.id, action: "install" });
    setNotice(null);
    try {
      const result = await api.post<InstallResponse>("/api/v1/marketplace/install", { plugin_id: item.id });
      await Promise.all([load(), refreshPlugins()]);
      const warnings = result.warnings?.length ? ` (${result.warnings.join("; ")})` : "";
      setNotice({ kind: "success", text: `${result.message}${warnings}` });
    } catch (e) {
      setNotice({ kind: "error", text: `Could not install ${item.name}: ${errorMessage(e)}` });
      await load();
    } finally {
      setBusy(null);
    }
  };

  const uninstall = async (item: CatalogItem) => {
    setConfirming(null);
    setBusy({ id: item.id, action: "uninstall" });
    setNotice(null);
    try {
      const result = await api.delete<UninstallResponse>(`/api/v1/marketplace/uninstall/${encodeURIComponent(item.id)}`);
      await Promise.all([load(), refreshPlugins()]);
      const warnings = result.warnings.length ? ` (${result.warnings.join("; ")})` : "";
      setNotice({ kind: "success", text: `${result.message}${warnings}` });
    } catch (e) {
      setNotice({ kind: "error", text: `Could not uninstall ${item.name}: ${errorMessage(e)}` });
      await load();
    } finally {
      setBusy(null);
    }
  };

  const categories = Array.from(new Set((items ?? []).map((i) => i.category).filter(Boolean))).sort();
  const needle = query.trim().toLowerCase();
  const shown = (items ?? []).filter(
    (item) =>
      (category === "all" || item.category === category) &&
      (!needle || `${item.name} ${item.description} ${item.author} ${item.id}`.toLowerCase().includes(needle)),
  );

  return (
    <section aria-labelledby="market-title">
      <div className="page-header">
        <h1 id="market-title">Marketplace</h1>
        <div className="filters" role="search">
          <label className="visually-hidden" htmlFor="market-search">
            Search plugins
          </label>
          <input
            id="market-search"
            type="search"
            placeholder="Search plugins"
            value={query}
            onChange={(e) => setQuery(e.target.value)}
          />
          <label className="visually-hidden" htmlFor="market-category">
            Category
          </label>
          <select id="market-category" value={category} onChange={(e) => setCategory(e.target.value)}>
            <option value="all">All categories</option>
            {categories.map((c) => (
              <option key={c} value={c}>
                {c}
              </option>
            ))}
          </select>
        </div>
      </div>
      {!isAdmin && (
        <p className="muted">Only administrators can install or uninstall plugins.</p>
      )}
      {notice && <Notice notice={notice} onDismiss={() => setNotice(null)} />}
      {loadError && <Notice notice={{ kind: "error", text: `Could not load the catalog: ${loadError}` }} />}
      {!items && !loadError && (
        <p className="muted" role="status">
          Loading the catalog…
        </p>
      )}
      {items && shown.length === 0 && (
        <p className="empty-state">{items.length === 0 ? "The plugin source offers no plugins." : "No plugin matches."}</p>
      )}
      <ul className="cards" aria-label="Plugins">
        {shown.map((item) => {
          const working = busy?.id === item.id;
          const headingId = `plugin-${item.id}-name`;
          return (
            <li key={item.id} className="card plugin-card" aria-labelledby={headingId} aria-busy={working}>
              <div className="plugin-card-head">
                <PluginIcon icon={item.icon} name={item.name} />
                <div>
                  <h2 id={headingId} className="plugin-name">
                    {item.name}
                  </h2>
                  <p className="plugin-meta">
                    v{item.latest} · by {item.author || "unknown"}
                  </p>
                </div>
                <span className={item.price ? "price" : "price price-free"}>{formatPrice(item.price)}</span>
              </div>
              <div className="tags">
                {item.category && <span className="tag">{item.category}</span>}
                {item.installed && (
                  <span className="tag tag-installed">
                    Installed{item.installed_version ? ` v${item.installed_version}` : ""}
                  </span>
                )}
                {item.state === "failed" && <span className="tag tag-error">Failed to load</span>}
              </div>
              <p className="plugin-description">{item.description || "No description."}</p>
              {isAdmin && (
                <div className="card-actions">
                  {item.installed ? (
                    <button
                      type="button"
                      className="button button-danger-outline"
                      disabled={busy !== null}
                      onClick={() => setConfirming(item)}
                    >
                      {working && busy?.action === "uninstall" ? "Uninstalling…" : "Uninstall"}
                      <span className="visually-hidden"> {item.name}</span>
                    </button>
                  ) : (
                    <button
                      type="button"
                      className="button button-primary"
                      disabled={busy !== null}
                      onClick={() => void install(item)}
                    >
                      {working && busy?.action === "install" ? "Installing…" : "Install"}
                      <span className="visually-hidden"> {item.name}</span>
                    </button>
                  )}
                </div>
              )}
            </li>
          );
        })}
      </ul>
      <ConfirmDialog
        open={confirming !== null}
        title={confirming ? `Uninstall ${confirming.name}?` : "Uninstall?"}
        confirmLabel="Uninstall"
        danger
        onCancel={() => setConfirming(null)}
        onConfirm={() => confirming && void uninstall(confirming)}
      >
        <p>
          Its pages, API routes and database tables are removed, with all the data in them. This cannot be
          undone.
        </p>
      </ConfirmDialog>
    </section>
  );
}
