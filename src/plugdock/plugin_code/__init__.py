"""Plugin code: importing a backend under a fresh module name, checking what its router serves,
its hooks and health check. Used by operations (inside their transaction), the live runtime
and the sandboxed child.
"""
