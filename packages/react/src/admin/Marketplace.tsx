// The marketplace: every plugin the source offers, installed or not; admins install, update,
// disable/enable, uninstall and upload packages here, and the plugin's pages appear, change or
// disappear without a reload.
import * as React from "react";

import { type CatalogItem, errorMessage } from "../client";
import { Notice } from "../Notice";
import { usePlugdock } from "../provider";
import { PermissionsNote } from "./Permissions";
import { EnabledSwitch, UploadButton, offeredUpdate, useLifecycle } from "./lifecycle";

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

/** plugdock's marketplace screen, for the host to mount under a route of its choice. */
export function Marketplace() {
  const { user, marketplace } = usePlugdock();
  const isAdmin = user?.role === "admin";
  const [items, setItems] = React.useState<CatalogItem[] | null>(null);
  const [loadError, setLoadError] = React.useState<string | null>(null);
  const [query, setQuery] = React.useState("");
  const [category, setCategory] = React.useState("all");

  const load = React.useCallback(async () => {
    try {
      setItems(await marketplace.catalog());
      setLoadError(null);
    } catch (e) {
      setLoadError(errorMessage(e));
    }
  }, [marketplace]);

  React.useEffect(() => {
    // eslint-disable-next-line react-hooks/set-state-in-effect -- state is set only after an await (a known false positive: React issue 34905)
    void load();
  }, [load]);

  const life = useLifecycle(load);
  const { busy, notice } = life;

  const categories = Array.from(new Set((items ?? []).map((i) => i.category).filter(Boolean))).sort();
  const needle = query.trim().toLowerCase();
  const shown = (items ?? []).filter(
    (item) =>
      (category === "all" || item.category === category) &&
      (!needle || `${item.name} ${item.description} ${item.author} ${item.id}`.toLowerCase().includes(needle)),
  );

  return (
    <section className="plugdock" aria-labelledby="market-title">
      <div className="page-header">
        <h1 id="market-title">Marketplace</h1>
        <div className="header-actions">
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
          {isAdmin && <UploadButton busy={busy?.action === "upload"} onFile={(file) => void life.upload(file)} />}
        </div>
      </div>
      {!isAdmin && (
        <p className="muted">Only administrators can install, update or uninstall plugins.</p>
      )}
      {notice && <Notice notice={notice} onDismiss={() => life.setNotice(null)} />}
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
          const update = item.installed ? offeredUpdate(item) : null;
          const blockedUpdate = item.installed && item.update_available && !update ? item.update_available : null;
          const disabled = item.installed && item.enabled === false;
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
                {disabled && <span className="tag tag-disabled">Disabled</span>}
                {update && <span className="tag tag-update">Update available {update}</span>}
                {item.state === "failed" && <span className="tag tag-error">Failed to load</span>}
              </div>
              <p className="plugin-description">{item.description || "No description."}</p>
              <PermissionsNote item={item} />
              {item.full_rights && !item.installed && <p className="full-rights-note">{item.full_rights}</p>}
              {blockedUpdate && (
                <p className="update-note muted">
                  Version {blockedUpdate} cannot be installed here: {item.update_problem ?? "this panel cannot take it"}
                </p>
              )}
              {isAdmin && item.installed && (
                <div className="card-switch">
                  <EnabledSwitch
                    target={item}
                    enabled={item.enabled !== false}
                    disabled={busy !== null}
                    onChange={(enabled) => void life.setEnabled(item, enabled)}
                  />
                </div>
              )}
              {isAdmin && (
                <div className="card-actions">
                  {item.installed ? (
                    <>
                      {update && (
                        <button
                          type="button"
                          className="button button-primary"
                          disabled={busy !== null}
                          onClick={() => life.askUpdate(item)}
                        >
                          {working && busy?.action === "update" ? "Updating…" : "Update"}
                          <span className="visually-hidden"> {item.name}</span>
                        </button>
                      )}
                      <button
                        type="button"
                        className="button button-danger-outline"
                        disabled={busy !== null}
                        onClick={() => life.askUninstall(item)}
                      >
                        {working && busy?.action === "uninstall" ? "Uninstalling…" : "Uninstall"}
                        <span className="visually-hidden"> {item.name}</span>
                      </button>
                    </>
                  ) : (
                    <button
                      type="button"
                      className="button button-primary"
                      disabled={busy !== null}
                      onClick={() => void life.install(item)}
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
      {life.dialogs}
    </section>
  );
}
