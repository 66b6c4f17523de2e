// Path patterns as plugins declare their pages: exact segments, `:name` parameters, and a
// trailing `*` for "this path and everything below it".

/** Match `path` against a pattern; returns the parameters, or null. */
export function matchPath(pattern: string, path: string): Record<string, string> | null {
  const trim = (p: string) => p.replace(/\/+$/, "") || "/";
  const want = trim(pattern).split("/");
  const have = trim(path).split("/");
  const params: Record<string, string> = {};
  for (let i = 0; i < want.length; i++) {
    const part = want[i];
    if (part === "*" && i === want.length - 1) {
      params["*"] = have.slice(i).join("/");
      return params;
    }
    if (i >= have.length) return null;
    if (part.startsWith(":")) {
      try {
        params[part.slice(1)] = decodeURIComponent(have[i]);
      } catch {
        return null;
      }
    } else if (part !== have[i]) {
      return null;
    }
  }
  return want.length === have.length ? params : null;
}
