// <Slot name="billing.invoice.actions" />: a place in the host's UI plugins may fill. No plugin
// contributes to slots yet (a later issue adds that to the plugin contract), so it renders
// its fallback; hosts can place slots now and keep them.
import type * as React from "react";

export interface SlotProps {
  /** The slot's name, dotted: "<area>.<place>" ("billing.invoice.actions"). */
  name: string;
  /** Data the host gives the contributions (the invoice shown, say). */
  context?: Record<string, unknown>;
  /** Rendered when no plugin contributes (default: nothing). */
  fallback?: React.ReactNode;
}

export function Slot({ fallback = null }: SlotProps) {
  return <>{fallback}</>;
}
