// The confirm steps of a plugin's life: install (with its dependency plan), update (from → to,
// data steps, changelog) and uninstall (tables and row counts, dependents, a backup). Each asks
// the server for its plan when it opens; the server stays the judge of what may run.
import * as React from "react";

import { type InstallPlan, type UpgradePlan, errorMessage } from "../client";
import { usePlugdock } from "../provider";
import { ConfirmDialog } from "./ConfirmDialog";
import { Markdown } from "./Markdown";
import { PermissionList } from "./Permissions";

export interface Target {
  id: string;
  name: string;
}

type Loaded<T> = { plan: T | null; error: string | null };

/** Fetch a plan while `target` is set; forget it when the dialog closes. */
function usePlan<T>(target: Target | null, load: (id: string) => Promise<T>): Loaded<T> {
  const id = target?.id ?? null;
  const [state, setState] = React.useState<Loaded<T> & { id: string | null }>({ id, plan: null, error: null });
  // Another target, or none: forget the last plan while rendering (an effect would show it once more).
  if (state.id !== id) setState({ id, plan: null, error: null });
  React.useEffect(() => {
    if (id === null) return;
    let cancelled = false;
    load(id).then(
      (plan) => !cancelled && setState({ id, plan, error: null }),
      (error: unknown) => !cancelled && setState({ id, plan: null, error: errorMessage(error) }),
    );
    return () => {
      cancelled = true;
    };
  }, [id, load]);
  return state;
}

function Loading({ what }: { what: string }) {
  return (
    <p className="muted" role="status">
      Loading {what}…
    </p>
  );
}

// -- install ---------------------------------------------------------------------------------

/** Shown only when installing brings dependencies along (the plan has more than the plugin). */
export function InstallPlanDialog({
  target,
  plan,
  onConfirm,
  onCancel,
}: {
  target: Target | null;
  plan: InstallPlan | null;
  onConfirm: () => void;
  onCancel: () => void;
}) {
  const steps = plan?.steps ?? [];
  return (
    <ConfirmDialog
      open={target !== null && plan !== null}
      title={target ? `Install ${target.name}?` : "Install?"}
      confirmLabel={`Install ${steps.length} plugins`}
      wide
      onConfirm={onConfirm}
      onCancel={onCancel}
    >
      <p>
        {target?.name} needs other plugins. They are installed first, in this order, as one operation: if one fails,
        none is installed.
      </p>
      {plan?.full_rights && <p className="full-rights-note">{plan.full_rights}</p>}
      <ol className="plan-list" aria-label="Install plan">
        {steps.map((step) => (
          <li key={step.plugin_id}>
            <strong>{step.plugin_id}</strong> {step.version}{" "}
            <span className="muted">— {step.reason === "requested" ? "the plugin you chose" : step.reason}</span>
          </li>
        ))}
      </ol>
    </ConfirmDialog>
  );
}

// -- update ----------------------------------------------------------------------------------

export function UpdateDialog({
  target,
  onConfirm,
  onCancel,
}: {
  target: Target | null;
  onConfirm: (plan: UpgradePlan) => void;
  onCancel: () => void;
}) {
  const { marketplace } = usePlugdock();
  const { plan, error } = usePlan(target, marketplace.planUpgrade);
  const blocked = !plan || !plan.compatible;
  const more = plan?.permissions_added ?? [];
  return (
    <ConfirmDialog
      open={target !== null}
      title={target ? `Update ${target.name}?` : "Update?"}
      confirmLabel={plan ? `${more.length ? "Grant and update" : "Update"} to ${plan.version}` : "Update"}
      confirmDisabled={blocked}
      wide
      onConfirm={() => plan && onConfirm(plan)}
      onCancel={onCancel}
    >
      {!plan && !error && <Loading what="the update" />}
      {error && <p className="error-text">Could not load the update: {error}</p>}
      {plan && (
        <>
          <p className="version-change">
            <span className="visually-hidden">From version </span>
            <code>{plan.from_version}</code> <span aria-hidden="true">→</span>
            <span className="visually-hidden"> to version </span> <code>{plan.version}</code>
          </p>
          {!plan.compatible && (
            <p className="error-text" role="alert">
              This update cannot be installed here: {plan.problem ?? "this panel cannot take it"}
            </p>
          )}
          {more.length > 0 && (
            <div className="permissions-ask" role="alert">
              <p>
                <strong>This version asks for more permissions.</strong> Updating grants them:
              </p>
              <PermissionList
                permissions={more}
                descriptions={plan.permissions_added_descriptions}
                label="Permissions the update adds"
              />
            </div>
          )}
          <p>
            {plan.steps.length > 0
              ? `Its data steps run in one transaction: ${plan.steps.join(", ")}. `
              : "It needs no data steps. "}
            Your data is kept; if anything fails, {plan.from_version} goes on serving as before.
          </p>
          <h3 className="dialog-subtitle">What changed</h3>
          {plan.changelog?.trim() ? (
            <div className="changelog" tabIndex={0} aria-label="Changelog">
              <Markdown source={plan.changelog} />
            </div>
          ) : (
            <p className="muted">The package has no changelog.</p>
          )}
        </>
      )}
    </ConfirmDialog>
  );
}

// -- uninstall -------------------------------------------------------------------------------

function rows(count: number): string {
  return `${count.toLocaleString()} ${count === 1 ? "row" : "rows"}`;
}

export function UninstallDialog({
  target,
  onConfirm,
  onCancel,
}: {
  target: Target | null;
  onConfirm: (backup: boolean, force: boolean) => void;
  onCancel: () => void;
}) {
  const { marketplace } = usePlugdock();
  const { plan, error } = usePlan(target, marketplace.planUninstall);
  const [backup, setBackup] = React.useState(true);
  const [force, setForce] = React.useState(false);
  const checkboxId = React.useId();
  const forceId = React.useId();
  // The safe choices, every time it opens (set while rendering, not in an effect after it).
  const [backupFor, setBackupFor] = React.useState(target?.id);
  if (backupFor !== target?.id) {
    setBackupFor(target?.id);
    setBackup(true);
    setForce(false);
  }
  const dependents = plan?.dependents ?? [];
  const hasRows = (plan?.tables ?? []).some((t) => t.rows > 0);
  return (
    <ConfirmDialog
      open={target !== null}
      title={target ? `Uninstall ${target.name}?` : "Uninstall?"}
      confirmLabel="Uninstall"
      danger
      confirmDisabled={dependents.length > 0}
      wide
      onConfirm={() => onConfirm(backup, force)}
      onCancel={onCancel}
    >
      <p>Its pages and API routes are removed, and its database tables are dropped.</p>
      {!plan && !error && <Loading what="what will be removed" />}
      {error && <p className="error-text">Could not list what will be removed: {error}</p>}
      {plan && dependents.length > 0 && (
        <p className="error-text" role="alert">
          {dependents.join(", ")} {dependents.length === 1 ? "needs" : "need"} it: uninstall{" "}
          {dependents.length === 1 ? "that plugin" : "those plugins"} first.
        </p>
      )}
      {plan && plan.tables.length > 0 && (
        <table className="table table-compact" aria-label="Tables to drop">
          <thead>
            <tr>
              <th scope="col">Table</th>
              <th scope="col" className="numeric">
                Rows
              </th>
            </tr>
          </thead>
          <tbody>
            {plan.tables.map((table) => (
              <tr key={table.name}>
                <th scope="row">
                  <code>{table.name}</code>
                </th>
                <td className="numeric">{rows(table.rows)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {plan && plan.tables.length === 0 && <p className="muted">It has no database tables.</p>}
      <p className="checkbox-row">
        <input id={checkboxId} type="checkbox" checked={backup} onChange={(e) => setBackup(e.target.checked)} />
        <label htmlFor={checkboxId}>Keep a backup of its data</label>
      </p>
      <p className={backup ? "muted" : "error-text"}>
        {backup
          ? "The rows are saved to a backup file first; it can be restored with plugdock install --restore."
          : hasRows
            ? "Without a backup, the rows are gone for good. This cannot be undone."
            : "No backup will be written. This cannot be undone."}
      </p>
      <p className="checkbox-row">
        <input id={forceId} type="checkbox" checked={force} onChange={(e) => setForce(e.target.checked)} />
        <label htmlFor={forceId}>Force: skip the plugin&apos;s own uninstall code</label>
      </p>
      {force && (
        <p className="muted">
          Its on_uninstall hook does not run (use this when it hangs or keeps failing); its tables, files and
          settings are removed all the same, and the audit log records the uninstall as forced.
        </p>
      )}
    </ConfirmDialog>
  );
}
