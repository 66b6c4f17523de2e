"""Running plugin backends out of the panel: processes, confinement, database roles, permissions."""
