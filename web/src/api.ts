// The panel's own endpoints, typed from its OpenAPI document.
//
// The client itself (request, api, ApiError) is @plugdock/sdk's, the one module the shell
// and every plugin share; the response types are generated from /openapi.json into
// generated/openapi.ts (scripts/openapi_types.py), so they cannot drift from the server.
import { api, request } from "@plugdock/sdk";

import type { components } from "./generated/openapi";

export { ApiError, api, errorMessage, request } from "@plugdock/sdk";

/** Where older shells kept the bearer token; removed on start (see auth.tsx). */
export const LEGACY_TOKEN_KEY = "plugdock_token";

type Schemas = components["schemas"];

export type User = Schemas["UserOut"];
export type AuditEntry = Schemas["AuditEntryOut"];
export type Dashboard = Schemas["DashboardOut"];
export type CatalogItem = Schemas["CatalogItem"];
export type InstalledPlugin = Schemas["InstalledPlugin"];
export type InstallResponse = Schemas["InstallResponse"];
export type UninstallResponse = Schemas["UninstallResponse"];
export type InstallPlan = Schemas["InstallPlan"];
export type UpgradePlan = Schemas["UpgradePlan"];
export type UninstallPlan = Schemas["UninstallPlan"];
export type UpgradeResponse = Schemas["UpgradeResponse"];
export type ToggleResponse = Schemas["ToggleResponse"];
/** POST /upload: the install or upgrade response, and which of the two it was. */
export type UploadResponse = Schemas["UploadedInstall"] | Schemas["UploadedUpgrade"];
/** One entry of GET /api/v1/frontend/plugins. */
export type FrontendEntry = Schemas["FrontendPlugin"];

/** Sign-in for the web UI: an HttpOnly session cookie, never a token in the page. */
export const session = {
  signIn: (username: string, password: string) =>
    request<Schemas["SessionResponse"]>("POST", "/api/v1/auth/session", { body: { username, password } }),
  signOut: () => request<null>("POST", "/api/v1/auth/logout"),
  me: () => request<User>("GET", "/api/v1/auth/me"),
};

/** Accounts (admins): list, create, change role or active flag. */
export const accounts = {
  list: () => request<User[]>("GET", "/api/v1/users"),
  create: (username: string, password: string, role: User["role"]) =>
    request<User>("POST", "/api/v1/users", { body: { username, password, role } }),
  update: (id: number, change: { role?: User["role"]; is_active?: boolean }) =>
    request<User>("PATCH", `/api/v1/users/${id}`, { body: change }),
};

/** The marketplace's lifecycle calls (issue 8). */
export const marketplace = {
  planInstall: (id: string) => api.get<InstallPlan>(`/api/v1/marketplace/plan/install/${encodeURIComponent(id)}`),
  planUpgrade: (id: string) => api.get<UpgradePlan>(`/api/v1/marketplace/plan/upgrade/${encodeURIComponent(id)}`),
  planUninstall: (id: string) =>
    api.get<UninstallPlan>(`/api/v1/marketplace/plan/uninstall/${encodeURIComponent(id)}`),
  install: (id: string) => api.post<InstallResponse>("/api/v1/marketplace/install", { plugin_id: id }),
  /** `grant`: the permissions the admin confirmed beyond the current grant (else a 409 names them). */
  upgrade: (id: string, version: string | null = null, grant: string[] = []) =>
    api.post<UpgradeResponse>("/api/v1/marketplace/upgrade", { plugin_id: id, version, grant }),
  uninstall: (id: string, backup: boolean) =>
    api.delete<UninstallResponse>(`/api/v1/marketplace/uninstall/${encodeURIComponent(id)}?backup=${backup}`),
  setEnabled: (id: string, enabled: boolean) =>
    api.post<ToggleResponse>(`/api/v1/marketplace/${enabled ? "enable" : "disable"}/${encodeURIComponent(id)}`),
  upload: (file: File, grant: string[] = []) => {
    const form = new FormData();
    form.append("file", file, file.name);
    for (const permission of grant) form.append("grant", permission);
    return api.post<UploadResponse>("/api/v1/marketplace/upload", form);
  },
};

export function formatDate(iso: string): string {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}
