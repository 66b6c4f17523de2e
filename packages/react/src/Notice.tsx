// A success or error message, announced to screen readers, that the user can dismiss.
import type { NoticeKind } from "./protocol";

export interface NoticeValue {
  kind: NoticeKind;
  text: string;
}

export function Notice({ notice, onDismiss }: { notice: NoticeValue; onDismiss?: () => void }) {
  return (
    <div
      className={`notice notice-${notice.kind}`}
      role={notice.kind === "error" ? "alert" : "status"}
      aria-live={notice.kind === "error" ? "assertive" : "polite"}
    >
      <span className="notice-text">{notice.text}</span>
      {onDismiss && (
        <button type="button" className="notice-close" aria-label="Dismiss message" onClick={onDismiss}>
          ×
        </button>
      )}
    </div>
  );
}
