// The marketplace's changes, shared by the marketplace and installed pages: install (with its
// dependency plan), update, uninstall (with a backup), disable/enable and upload. Each change
// ends by reloading the page's list and the shell's plugin manifest, so pages and nav items
// appear, change or disappear without a reload.
import * as React from "react";

import { ApiError, type InstallPlan, type UpgradePlan, errorMessage } from "../client";
import type { NoticeValue } from "../Notice";
import { usePlugdock } from "../provider";
import { ConfirmDialog } from "./ConfirmDialog";
import { InstallPlanDialog, type Target, UninstallDialog, UpdateDialog } from "./LifecycleDialogs";
import { refusedPermissions } from "./Permissions";

export type Action = "install" | "update" | "uninstall" | "enable" | "disable" | "upload";
export type Busy = { id: string; action: Action } | null;

/** A plugin's update as the catalog reports it: offered only when this core can take it. */
export interface UpdateInfo {
  update_available?: string | null;
  update_compatible?: boolean;
  update_problem?: string | null;
}

export function offeredUpdate(item: UpdateInfo): string | null {
  return item.update_available && item.update_compatible === true ? item.update_available : null;
}

function withWarnings(message: string, warnings: string[] | undefined): string {
  return warnings?.length ? `${message} (${warnings.join("; ")})` : message;
}

export function useLifecycle(reload: () => Promise<void>) {
  const { refresh: refreshPlugins, marketplace } = usePlugdock();
  const [busy, setBusy] = React.useState<Busy>(null);
  const [notice, setNotice] = React.useState<NoticeValue | null>(null);
  const [installing, setInstalling] = React.useState<{ target: Target; plan: InstallPlan } | null>(null);
  const [updating, setUpdating] = React.useState<Target | null>(null);
  const [removing, setRemoving] = React.useState<Target | null>(null);
  // An uploaded upgrade the server refused until the admin grants what it newly asks for.
  const [uploadGrant, setUploadGrant] = React.useState<{ file: File; permissions: string[] } | null>(null);

  /** Run one change: busy while it runs, then the server's message (or error) as the notice. */
  const run = async (target: Target, action: Action, verb: string, call: () => Promise<string>) => {
    setBusy({ id: target.id, action });
    setNotice(null);
    try {
      const text = await call();
      await Promise.all([reload(), refreshPlugins()]);
      setNotice({ kind: "success", text });
    } catch (e) {
      setNotice({ kind: "error", text: `Could not ${verb} ${target.name}: ${errorMessage(e)}` });
      await Promise.all([reload(), refreshPlugins()]);
    } finally {
      setBusy(null);
    }
  };

  const doInstall = (target: Target) =>
    run(target, "install", "install", async () => {
      const result = await marketplace.install(target.id);
      const also = (result.installed ?? []).filter((id) => id !== result.plugin_id);
      const message = also.length ? `${result.message}; also installed: ${also.join(", ")}` : result.message;
      return withWarnings(message, result.warnings);
    });

  /** Install at once, or first show the plan when dependencies come along. */
  const install = async (target: Target) => {
    setBusy({ id: target.id, action: "install" });
    let plan: InstallPlan | null;
    try {
      plan = await marketplace.planInstall(target.id);
    } catch {
      plan = null; // no plan to show: the install itself says what is wrong
    }
    if (plan && plan.steps.length > 1) {
      setBusy(null);
      setInstalling({ target, plan });
      return;
    }
    await doInstall(target);
  };

  const update = (target: Target, plan: UpgradePlan) => {
    setUpdating(null);
    return run(target, "update", "update", async () => {
      // The plan listed what the update adds; confirming the dialog grants exactly those.
      const result = await marketplace.upgrade(target.id, plan.version, plan.permissions_added);
      return withWarnings(result.message, result.warnings);
    });
  };

  const uninstall = (target: Target, backup: boolean, force: boolean) => {
    setRemoving(null);
    return run(target, "uninstall", "uninstall", async () => {
      const result = await marketplace.uninstall(target.id, backup, force);
      const saved = result.backup ? `; backup saved as ${result.backup}` : "";
      return withWarnings(`${result.message}${saved}`, result.warnings);
    });
  };

  const setEnabled = (target: Target, enabled: boolean) =>
    run(target, enabled ? "enable" : "disable", enabled ? "enable" : "disable", async () => {
      const result = await marketplace.setEnabled(target.id, enabled);
      return result.message;
    });

  const upload = (file: File, grant: string[] = []) =>
    run({ id: "", name: file.name }, "upload", "install", async () => {
      try {
        const result = await marketplace.upload(file, grant);
        const granted = result.permissions?.length ? `; granted: ${result.permissions.join(", ")}` : "";
        return withWarnings(`${result.message}${granted}`, result.warnings);
      } catch (e) {
        const permissions = e instanceof ApiError ? refusedPermissions(e.status, e.message) : null;
        if (permissions) setUploadGrant({ file, permissions }); // ask, then upload it again
        throw e;
      }
    });

  const dialogs = (
    <>
      <InstallPlanDialog
        target={installing?.target ?? null}
        plan={installing?.plan ?? null}
        onCancel={() => setInstalling(null)}
        onConfirm={() => {
          const target = installing?.target;
          setInstalling(null);
          if (target) void doInstall(target);
        }}
      />
      <UpdateDialog
        target={updating}
        onCancel={() => setUpdating(null)}
        onConfirm={(plan) => updating && void update(updating, plan)}
      />
      <ConfirmDialog
        open={uploadGrant !== null}
        title="Grant more permissions?"
        confirmLabel="Grant and update"
        onConfirm={() => {
          const pending = uploadGrant;
          setUploadGrant(null);
          if (pending) void upload(pending.file, pending.permissions);
        }}
        onCancel={() => setUploadGrant(null)}
      >
        <p>{uploadGrant?.file.name} is an update that asks for permissions the installed version was not granted:</p>
        <ul className="permission-list" aria-label="Permissions the update adds">
          {(uploadGrant?.permissions ?? []).map((p) => (
            <li key={p}>
              <code>{p}</code>
            </li>
          ))}
        </ul>
        <p className="muted">Nothing has changed yet. Granting them uploads the package again and updates it.</p>
      </ConfirmDialog>
      <UninstallDialog
        target={removing}
        onCancel={() => setRemoving(null)}
        onConfirm={(backup, force) => removing && void uninstall(removing, backup, force)}
      />
    </>
  );

  return {
    busy,
    notice,
    setNotice,
    install,
    askUpdate: setUpdating,
    askUninstall: setRemoving,
    setEnabled,
    upload,
    dialogs,
  };
}

/** The on/off switch of an installed plugin: off keeps its tables and rows, and runs no SQL. */
export function EnabledSwitch({
  target,
  enabled,
  disabled,
  onChange,
}: {
  target: Target;
  enabled: boolean;
  disabled?: boolean;
  onChange: (enabled: boolean) => void;
}) {
  return (
    <label className="switch">
      <input
        type="checkbox"
        role="switch"
        checked={enabled}
        disabled={disabled}
        aria-label={`${target.name} enabled`}
        onChange={(e) => onChange(e.target.checked)}
      />
      <span className="switch-track" aria-hidden="true" />
      <span className="switch-text" aria-hidden="true">
        {enabled ? "Enabled" : "Disabled"}
      </span>
    </label>
  );
}

/** "Upload a package": a plugin ZIP from disk, checked and signature-checked like any other.
 * While plugins run inside the panel, a dialog first says what that means. */
export function UploadButton({ busy, onFile }: { busy: boolean; onFile: (file: File) => void }) {
  const input = React.useRef<HTMLInputElement>(null);
  const [fullRights, setFullRights] = React.useState<string | null>(null);
  const [asking, setAsking] = React.useState(false);
  const { marketplace } = usePlugdock();
  React.useEffect(() => {
    marketplace.isolation().then(
      (isolation) => setFullRights(isolation.full_rights ?? null),
      () => setFullRights(null), // the upload itself still works; the server checks it
    );
  }, [marketplace]);
  return (
    <>
      <ConfirmDialog
        open={asking}
        title="Upload a package?"
        confirmLabel="Choose a package"
        danger
        onConfirm={() => {
          setAsking(false);
          input.current?.click();
        }}
        onCancel={() => setAsking(false)}
      >
        <p className="full-rights-note">{fullRights}</p>
      </ConfirmDialog>
      <input
        ref={input}
        type="file"
        accept=".zip,application/zip"
        className="visually-hidden"
        tabIndex={-1}
        aria-hidden="true" // the button below is the control; this only opens the file chooser
        onChange={(e) => {
          const file = e.target.files?.[0];
          e.target.value = ""; // choosing the same file again still fires
          if (file) onFile(file);
        }}
      />
      <button
        type="button"
        className="button"
        disabled={busy}
        onClick={() => (fullRights ? setAsking(true) : input.current?.click())}
      >
        {busy ? "Uploading…" : "Upload a package"}
      </button>
    </>
  );
}
