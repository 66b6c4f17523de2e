"use client";
import { Marketplace } from "@plugdock/react";

export default function PluginsPage() {
  return <Marketplace />;
}
