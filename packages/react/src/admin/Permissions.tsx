// What a plugin may do beyond its own tables (metadata.json's `permissions`), in plain words:
// what it asks for before an install, what it was granted once installed, and what an
// update adds. The server words each permission (permission_descriptions), the UI lists them.
export interface PermissionsInfo {
  permissions?: string[];
  permission_descriptions?: string[];
}

/** One line per permission: its sentence, with the permission itself as code. */
export function PermissionList({
  permissions,
  descriptions,
  label,
}: {
  permissions: string[];
  descriptions: string[];
  label: string;
}) {
  return (
    <ul className="permission-list" aria-label={label}>
      {permissions.map((permission, i) => (
        <li key={permission}>
          {descriptions[i] ?? permission} <code className="muted">{permission}</code>
        </li>
      ))}
    </ul>
  );
}

/** "Asks for: …" on a marketplace card, "Granted: …" for an installed plugin. */
export function PermissionsNote({ item, granted }: { item: PermissionsInfo; granted?: boolean }) {
  const permissions = item.permissions ?? [];
  const label = granted ? "Granted permissions" : "Permissions it asks for";
  if (permissions.length === 0) {
    return <p className="permissions-note muted">{granted ? "Granted no permissions" : "Asks for no permissions"}</p>;
  }
  return (
    <div className="permissions-note">
      <span className="permissions-title">{granted ? "Granted:" : "Asks for:"}</span>
      <PermissionList permissions={permissions} descriptions={item.permission_descriptions ?? []} label={label} />
    </div>
  );
}

/**
 * The permissions an upgrade was refused for (HTTP 409), read from the server's message
 * "<id> <version> asks for permissions it was not granted: a, b; confirm them to upgrade"
 * (the SDK's ApiError keeps only `detail`; tests/operations/test_permissions.py pins the wording).
 */
export function refusedPermissions(status: number, message: string): string[] | null {
  if (status !== 409) return null;
  const found = /asks for permissions it was not granted: (.+); confirm them to upgrade/.exec(message);
  return found ? found[1].split(", ") : null;
}
