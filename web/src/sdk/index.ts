// @plugdock/sdk: what the panel gives plugin UIs at runtime, one module for the shell and
// every plugin bundle (an import-map entry, like React). Plugin authors: docs/frontend.md.
//
//   import { request, ApiError, useUser, notify, type AddonConfig } from "@plugdock/sdk";
//
// Its TypeScript declarations (plugdock-sdk.d.ts) are generated from these files by
// web/sdk-types.mjs; only what this file exports is public.
export {
  ApiError,
  CSRF_COOKIE,
  CSRF_HEADER,
  type Method,
  type PlugdockApi,
  type RequestOptions,
  type Transport,
  type ValidationIssue,
  api,
  clientHooks,
  csrfToken,
  describeDetail,
  errorMessage,
  request,
} from "./client";
export { type AddonConfig, type NavItem, type PluginComponentProps, type RouteDef, defineAddon } from "./contract";
export {
  NOTICE_MS,
  type Notice,
  type NoticeKind,
  currentNotices,
  dismissNotice,
  notify,
  setNoticeSink,
  useNotices,
} from "./notices";
export { type SdkUser, currentUser, onUserChange, setCurrentUser, useUser } from "./user";

/** The SDK's contract version: raised when something is removed or changes meaning. */
export const SDK_VERSION = 1;
