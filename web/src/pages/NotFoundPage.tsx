import { knownPluginPage } from "@plugdock/react";
import { Link, usePath } from "../router";

export function NotFoundPage({ forbidden = false }: { forbidden?: boolean }) {
  const path = usePath();
  const plugin = knownPluginPage(path);
  if (forbidden) {
    return (
      <section className="empty-state" aria-labelledby="nf-title">
        <h1 id="nf-title">Not allowed</h1>
        <p>Only administrators can open this page.</p>
        <Link to="/">Back to the dashboard</Link>
      </section>
    );
  }
  return (
    <section className="empty-state" aria-labelledby="nf-title">
      <h1 id="nf-title">{plugin ? `${plugin} is not installed` : "Page not found"}</h1>
      <p>
        {plugin ? (
          <>
            The page <code>{path}</code> belongs to the plugin {plugin}, which is not installed.
          </>
        ) : (
          <>
            No page at <code>{path}</code>. If it belongs to a plugin, that plugin is not installed.
          </>
        )}
      </p>
      <p>
        <Link to="/marketplace" className="button button-primary">
          Open the marketplace
        </Link>
      </p>
    </section>
  );
}
