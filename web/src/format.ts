// Formatting for display.

/** An ISO timestamp in the browser's locale; the text itself when it does not parse. */
export function formatDate(iso: string): string {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}
