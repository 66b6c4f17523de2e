// @plugdock/react: plugdock's frontend for any host app (README.md).
export {
  ApiError,
  CSRF_HEADER,
  type CatalogItem,
  type Delivery,
  type FetchLike,
  type FrontendEntry,
  type InstalledPlugin,
  type Method,
  type PlugdockClient,
  describeDetail,
  errorMessage,
} from "./client";
export { ErrorBoundary } from "./ErrorBoundary";
export { FRAME_SANDBOX, PageFrame, WidgetFrame } from "./frames";
export { type PluginNavInfo, type PluginRouteInfo, type PluginsInfo, usePluginNav, usePluginRoutes, usePlugins } from "./hooks";
export { Link, type LinkProps } from "./Link";
export { Notice, type NoticeValue } from "./Notice";
export { PlugdockNotices } from "./Notices";
export { matchPath } from "./paths";
export { PluginPage, type PluginPageProps } from "./PluginPage";
export {
  type ImportBundle,
  type LoadedPlugin,
  type NavItem,
  type PluginComponentProps,
  type PluginRoute,
  knownPluginPage,
  normalizeConfig,
} from "./plugins";
export { PluginWidgets, type PluginWidgetsProps } from "./PluginWidgets";
export type { FrameRoute, NoticeKind, PlugdockUser } from "./protocol";
export { type PlugdockProviderProps, type PlugdockState, PlugdockProvider, usePlugdock } from "./provider";
export { Slot, type SlotProps } from "./Slot";
export { EventDeliveries } from "./admin/EventDeliveries";
export { InstalledPlugins, type InstalledPluginsProps } from "./admin/InstalledPlugins";
export { Marketplace } from "./admin/Marketplace";
