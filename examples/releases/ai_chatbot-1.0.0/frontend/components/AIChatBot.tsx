// The floating chat bubble: a round button in the corner that opens the ChatWidget in a
// small dialog. Escape or the × button closes it and puts focus back on the bubble.
import * as React from "react";

import { CHAT_API } from "../lib/api";
import { ChatWidget } from "./ChatWidget";

export interface AIChatBotProps {
  /** Base URL of the chat API; default "/api/v1/chat" on the same origin. */
  apiBase?: string;
  /** Dialog title. */
  title?: string;
  /** Start opened (e.g. on a dedicated contact page). */
  defaultOpen?: boolean;
}

export function AIChatBot({ apiBase = CHAT_API, title = "Chat with us", defaultOpen = false }: AIChatBotProps) {
  const [open, setOpen] = React.useState(defaultOpen);
  // The widget stays mounted once opened, so a draft survives closing and reopening.
  const [opened, setOpened] = React.useState(defaultOpen);
  const bubbleRef = React.useRef<HTMLButtonElement>(null);
  const dialogRef = React.useRef<HTMLDivElement>(null);
  const dialogId = React.useId();
  const titleId = `${dialogId}-title`;

  const close = React.useCallback(() => {
    setOpen(false);
    bubbleRef.current?.focus();
  }, []);

  React.useEffect(() => {
    if (!open) return;
    const onKeyDown = (event: KeyboardEvent) => {
      if (event.key === "Escape") {
        event.stopPropagation();
        close();
      }
    };
    document.addEventListener("keydown", onKeyDown);
    // Move focus into the dialog unless the widget already focused a field.
    const dialog = dialogRef.current;
    if (dialog && !dialog.contains(document.activeElement)) {
      const field = dialog.querySelector<HTMLElement>("input, textarea, button:not([data-close])");
      (field ?? dialog).focus();
    }
    return () => document.removeEventListener("keydown", onKeyDown);
  }, [open, close]);

  return (
    <div style={styles.root}>
      {opened && (
        <div
          ref={dialogRef}
          id={dialogId}
          role="dialog"
          aria-modal="false"
          aria-labelledby={titleId}
          tabIndex={-1}
          hidden={!open}
          style={open ? styles.dialog : undefined}
        >
          <div style={styles.header}>
            <h2 id={titleId} style={styles.title}>
              {title}
            </h2>
            <button
              type="button"
              data-close
              aria-label="Close chat"
              style={styles.close}
              onClick={close}
            >
              ×
            </button>
          </div>
          <div style={styles.body}>
            <ChatWidget apiBase={apiBase} autoFocus />
          </div>
        </div>
      )}
      <button
        ref={bubbleRef}
        type="button"
        aria-label={open ? "Close support chat" : "Open support chat"}
        aria-expanded={open}
        aria-controls={opened ? dialogId : undefined}
        aria-haspopup="dialog"
        style={styles.bubble}
        onClick={() => {
          if (open) {
            close();
          } else {
            setOpened(true);
            setOpen(true);
          }
        }}
      >
        <span aria-hidden="true">{open ? "×" : "💬"}</span>
      </button>
    </div>
  );
}

export default AIChatBot;

const styles: Record<string, React.CSSProperties> = {
  root: {
    position: "fixed",
    right: 20,
    bottom: 20,
    zIndex: 1000,
    display: "flex",
    flexDirection: "column",
    alignItems: "flex-end",
    gap: 12,
    fontFamily: "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif",
  },
  dialog: {
    width: "min(360px, calc(100vw - 40px))",
    height: "min(520px, calc(100vh - 120px))",
    display: "flex",
    flexDirection: "column",
    background: "#fff",
    borderRadius: 12,
    boxShadow: "0 12px 32px rgba(0, 0, 0, 0.2)",
    overflow: "hidden",
  },
  header: {
    display: "flex",
    alignItems: "center",
    justifyContent: "space-between",
    padding: "10px 12px",
    background: "#1e3a8a",
    color: "#fff",
  },
  title: { margin: 0, fontSize: 16 },
  close: {
    border: "none",
    background: "transparent",
    color: "#fff",
    fontSize: 22,
    lineHeight: 1,
    cursor: "pointer",
  },
  body: { flex: 1, minHeight: 0, overflowY: "auto" },
  bubble: {
    width: 56,
    height: 56,
    borderRadius: "50%",
    border: "none",
    background: "#2563eb",
    color: "#fff",
    fontSize: 26,
    cursor: "pointer",
    boxShadow: "0 6px 16px rgba(37, 99, 235, 0.4)",
  },
};
