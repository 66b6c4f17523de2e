"""Plugin backends in a running app: import, check, mount, unmount; every worker in step."""
