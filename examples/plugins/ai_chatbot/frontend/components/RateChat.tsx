// "How did we do?": five stars and an optional comment under the conversation (1.1.0).
import * as React from "react";

import { chatErrorText } from "../lib/api";
import { MAX_COMMENT_LENGTH, type RatingIn, type RatingOut, starsText } from "../lib/rating";

export interface RateChatProps {
  onRate: (rating: RatingIn) => Promise<RatingOut>;
}

export function RateChat({ onRate }: RateChatProps) {
  const [stars, setStars] = React.useState(0);
  const [comment, setComment] = React.useState("");
  const [saved, setSaved] = React.useState<RatingOut | null>(null);
  const [busy, setBusy] = React.useState(false);
  const [error, setError] = React.useState<string | null>(null);
  const commentId = React.useId();

  if (saved) {
    return (
      <div style={styles.box} aria-live="polite">
        <span>
          Thanks for your rating: <span aria-label={`${saved.stars} of 5 stars`}>{starsText(saved.stars)}</span>
        </span>
        <button type="button" style={styles.link} onClick={() => setSaved(null)}>
          Change
        </button>
      </div>
    );
  }

  const submit = async (event: React.FormEvent<HTMLFormElement>) => {
    event.preventDefault();
    if (!stars || busy) return;
    setBusy(true);
    setError(null);
    try {
      setSaved(await onRate({ stars, comment: comment.trim() || null }));
    } catch (e) {
      setError(chatErrorText(e));
    } finally {
      setBusy(false);
    }
  };

  return (
    <form style={styles.box} onSubmit={submit} aria-label="Rate this conversation">
      <span style={styles.label}>How did we do?</span>
      <span role="radiogroup" aria-label="Stars">
        {[1, 2, 3, 4, 5].map((n) => (
          <button
            key={n}
            type="button"
            role="radio"
            aria-checked={stars === n}
            aria-label={`${n} star${n === 1 ? "" : "s"}`}
            style={{ ...styles.star, color: n <= stars ? "#f59e0b" : "#d1d5db" }}
            onClick={() => setStars(n)}
          >
            ★
          </button>
        ))}
      </span>
      {stars > 0 && (
        <>
          <label htmlFor={commentId} style={styles.visuallyHidden}>
            Comment (optional)
          </label>
          <input
            id={commentId}
            style={styles.input}
            value={comment}
            maxLength={MAX_COMMENT_LENGTH}
            placeholder="Anything to add? (optional)"
            onChange={(e) => setComment(e.target.value)}
          />
          <button type="submit" style={styles.send} disabled={busy}>
            {busy ? "Sending…" : "Send rating"}
          </button>
        </>
      )}
      {error && (
        <p role="alert" style={styles.error}>
          {error}
        </p>
      )}
    </form>
  );
}

export default RateChat;

const styles: Record<string, React.CSSProperties> = {
  box: {
    display: "flex",
    flexWrap: "wrap",
    alignItems: "center",
    gap: 6,
    padding: "6px 12px",
    borderTop: "1px solid #e5e7eb",
    fontSize: 13,
    color: "#374151",
  },
  label: { fontWeight: 600 },
  star: { border: "none", background: "none", fontSize: 18, cursor: "pointer", padding: 0 },
  input: { flex: 1, minWidth: 120, padding: "4px 8px", border: "1px solid #d1d5db", borderRadius: 6 },
  send: {
    padding: "4px 10px",
    border: "none",
    borderRadius: 6,
    background: "#2563eb",
    color: "#fff",
    cursor: "pointer",
  },
  link: { border: "none", background: "none", color: "#2563eb", cursor: "pointer", padding: 0 },
  error: { margin: 0, width: "100%", color: "#b91c1c" },
  visuallyHidden: {
    position: "absolute",
    width: 1,
    height: 1,
    overflow: "hidden",
    clip: "rect(0 0 0 0)",
    whiteSpace: "nowrap",
  },
};
