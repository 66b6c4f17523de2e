// An installed plugin's declared settings as a form generated from its JSON Schema subset
// (GET|PUT /api/v1/plugins/{id}/settings). Self-contained on purpose: it takes the plugin id
// and the function that calls the panel's API, and imports nothing else of the shell, so
// it moves with the admin screens wherever they live.
//
// A secret (writeOnly) is never shown: the field says "set" or "not set" and offers to
// replace or clear it; left alone it is kept. A value the environment sets is read-only.
// The server's 422 carries a message per field; each appears under its field.
import * as React from "react";

export type SettingsCall = <T>(method: "GET" | "PUT", path: string, body?: unknown) => Promise<T>;

export interface SettingState {
  name: string;
  title: string;
  description: string;
  type: "string" | "integer" | "number" | "boolean";
  secret: boolean;
  required: boolean;
  set: boolean;
  source: "environment" | "stored" | "default" | "unset";
  env_var: string;
  value?: unknown;
  problem?: string | null;
  property_schema: { [key: string]: unknown };
}

export interface PluginSettingsState {
  plugin_id: string;
  needs_configuration: boolean;
  settings: SettingState[];
}

export interface PluginSettingsProps {
  pluginId: string;
  /** The panel's API call (the signed-in session, CSRF header on PUT); rejects with an
   * error whose `detail` is FastAPI's (a list of {loc, msg} on 422). */
  call: SettingsCall;
  onClose?: () => void;
  onSaved?: (state: PluginSettingsState) => void;
}

type Draft = Record<string, string | boolean>;
/** For a secret: keep it, type a new one, or clear it. */
type SecretAction = "keep" | "replace" | "clear";

function fieldErrors(error: unknown): { fields: Record<string, string>; general: string | null } {
  const detail = (error as { detail?: unknown } | null)?.detail;
  const fields: Record<string, string> = {};
  if (Array.isArray(detail)) {
    const rest: string[] = [];
    for (const item of detail as { loc?: unknown[]; msg?: string }[]) {
      const name = item.loc?.[item.loc.length - 1];
      if (typeof name === "string" && item.msg) fields[name] = item.msg;
      else if (item.msg) rest.push(item.msg);
    }
    return { fields, general: rest.length ? rest.join("; ") : null };
  }
  return { fields, general: error instanceof Error ? error.message : String(error) };
}

/** A setting's value as text (settings are strings, numbers and booleans only). */
function asText(value: unknown): string {
  if (value === null || value === undefined) return "";
  if (typeof value === "string" || typeof value === "number" || typeof value === "boolean") return String(value);
  return JSON.stringify(value);
}

function draftOf(state: PluginSettingsState): Draft {
  const draft: Draft = {};
  for (const s of state.settings) {
    if (s.secret) continue;
    draft[s.name] = s.type === "boolean" ? s.value === true : asText(s.value);
  }
  return draft;
}

function changedValue(setting: SettingState, raw: string | boolean): unknown {
  if (setting.type === "boolean") return raw === true;
  const text = String(raw);
  if (text === "") return null; // cleared: the default (if any) applies again
  if (setting.type === "integer" || setting.type === "number") {
    const parsed = Number(text);
    return Number.isFinite(parsed) ? parsed : text; // the server words what is wrong
  }
  return text;
}

export function PluginSettings({ pluginId, call, onClose, onSaved }: PluginSettingsProps) {
  const path = `/api/v1/plugins/${encodeURIComponent(pluginId)}/settings`;
  const [state, setState] = React.useState<PluginSettingsState | null>(null);
  const [draft, setDraft] = React.useState<Draft>({});
  const [secrets, setSecrets] = React.useState<Record<string, SecretAction>>({});
  const [secretText, setSecretText] = React.useState<Record<string, string>>({});
  const [errors, setErrors] = React.useState<Record<string, string>>({});
  const [general, setGeneral] = React.useState<string | null>(null);
  const [saving, setSaving] = React.useState(false);
  const [saved, setSaved] = React.useState(false);

  const show = React.useCallback((next: PluginSettingsState) => {
    setState(next);
    setDraft(draftOf(next));
    setSecrets({});
    setSecretText({});
  }, []);

  React.useEffect(() => {
    let cancelled = false;
    call<PluginSettingsState>("GET", path)
      .then((next) => {
        if (!cancelled) show(next);
      })
      .catch((e: unknown) => {
        if (!cancelled) setGeneral(fieldErrors(e).general);
      });
    return () => {
      cancelled = true;
    };
  }, [call, path, show]);

  const save = async (event: React.FormEvent) => {
    event.preventDefault();
    if (!state) return;
    const values: Record<string, unknown> = {};
    for (const s of state.settings) {
      if (s.source === "environment") continue;
      if (s.secret) {
        const action = secrets[s.name] ?? "keep";
        if (action === "replace") values[s.name] = secretText[s.name] ?? "";
        if (action === "clear") values[s.name] = null;
        continue;
      }
      const before = draftOf(state)[s.name];
      if (draft[s.name] !== before) values[s.name] = changedValue(s, draft[s.name]);
    }
    setSaving(true);
    setSaved(false);
    try {
      const next = await call<PluginSettingsState>("PUT", path, { values });
      show(next);
      setErrors({});
      setGeneral(null);
      setSaved(true);
      onSaved?.(next);
    } catch (e) {
      const found = fieldErrors(e);
      setErrors(found.fields);
      setGeneral(found.general);
    } finally {
      setSaving(false);
    }
  };

  const formId = `plugin-settings-${pluginId}`;
  return (
    <section className="plugin-settings" aria-labelledby={`${formId}-title`}>
      <h2 id={`${formId}-title`}>Settings of {pluginId}</h2>
      {!state && !general && <p role="status">Loading…</p>}
      {state?.needs_configuration && (
        <p className="error-text" role="status">
          Needs configuration: its pages and API answer 503 until the settings below are set.
        </p>
      )}
      {general && (
        <p className="error-text" role="alert">
          {general}
        </p>
      )}
      {state && state.settings.length === 0 && <p>This plugin declares no settings.</p>}
      {state && state.settings.length > 0 && (
        <form id={formId} onSubmit={(e) => void save(e)} noValidate>
          {state.settings.map((s) => {
            const id = `${formId}-${s.name}`;
            const message = errors[s.name] ?? s.problem ?? null;
            const describedBy = `${id}-help ${id}-error`;
            const fromEnv = s.source === "environment";
            const schema = s.property_schema;
            const choices = Array.isArray(schema.enum) ? (schema.enum as unknown[]) : null;
            return (
              <div className="field" key={s.name} data-setting={s.name}>
                <label htmlFor={id}>
                  {s.title}
                  {s.required && <span aria-hidden="true"> *</span>}
                </label>
                {fromEnv ? (
                  <p id={id} className="muted">
                    Set by the environment ({s.env_var}){s.secret ? "" : `: ${asText(s.value)}`}
                  </p>
                ) : s.secret ? (
                  <SecretField
                    id={id}
                    isSet={s.set}
                    action={secrets[s.name] ?? "keep"}
                    text={secretText[s.name] ?? ""}
                    describedBy={describedBy}
                    onAction={(action) => setSecrets((prev) => ({ ...prev, [s.name]: action }))}
                    onText={(text) => setSecretText((prev) => ({ ...prev, [s.name]: text }))}
                  />
                ) : s.type === "boolean" ? (
                  <input
                    id={id}
                    type="checkbox"
                    checked={draft[s.name] === true}
                    aria-describedby={describedBy}
                    onChange={(e) => setDraft((prev) => ({ ...prev, [s.name]: e.target.checked }))}
                  />
                ) : choices ? (
                  <select
                    id={id}
                    value={String(draft[s.name] ?? "")}
                    aria-describedby={describedBy}
                    onChange={(e) => setDraft((prev) => ({ ...prev, [s.name]: e.target.value }))}
                  >
                    <option value="">—</option>
                    {choices.map((c) => (
                      <option key={String(c)} value={String(c)}>
                        {String(c)}
                      </option>
                    ))}
                  </select>
                ) : (
                  <input
                    id={id}
                    className="input"
                    type={s.type === "string" ? (schema.format === "uri" ? "url" : schema.format === "email" ? "email" : "text") : "number"}
                    value={String(draft[s.name] ?? "")}
                    aria-invalid={message ? true : undefined}
                    aria-describedby={describedBy}
                    onChange={(e) => setDraft((prev) => ({ ...prev, [s.name]: e.target.value }))}
                  />
                )}
                <div id={`${id}-help`} className="muted">
                  {s.description}
                </div>
                <div id={`${id}-error`} className="error-text" role={message ? "alert" : undefined}>
                  {message}
                </div>
              </div>
            );
          })}
          <div className="dialog-actions">
            {saved && <span role="status">Saved.</span>}
            {onClose && (
              <button type="button" className="button" onClick={onClose}>
                Close
              </button>
            )}
            <button type="submit" className="button button-primary" disabled={saving}>
              {saving ? "Saving…" : "Save settings"}
            </button>
          </div>
        </form>
      )}
    </section>
  );
}

function SecretField(props: {
  id: string;
  isSet: boolean;
  action: SecretAction;
  text: string;
  describedBy: string;
  onAction: (action: SecretAction) => void;
  onText: (text: string) => void;
}) {
  const { id, isSet, action, text, describedBy, onAction, onText } = props;
  if (action === "replace" || !isSet) {
    return (
      <span className="secret-field">
        <input
          id={id}
          className="input"
          type="password"
          autoComplete="off"
          value={text}
          placeholder={isSet ? "new value" : "not set"}
          aria-describedby={describedBy}
          onChange={(e) => {
            onText(e.target.value);
            onAction("replace");
          }}
        />
        {isSet && (
          <button type="button" className="button button-small" onClick={() => onAction("keep")}>
            Keep the current value
          </button>
        )}
      </span>
    );
  }
  return (
    <span className="secret-field" id={id} aria-describedby={describedBy}>
      <span className="tag">{action === "clear" ? "will be cleared" : "set"}</span>{" "}
      <button type="button" className="button button-small" onClick={() => onAction("replace")}>
        Replace
      </button>{" "}
      <button
        type="button"
        className="button button-small"
        onClick={() => onAction(action === "clear" ? "keep" : "clear")}
      >
        {action === "clear" ? "Keep" : "Clear"}
      </button>
    </span>
  );
}

export default PluginSettings;
