"""plugdock: a plugin system for FastAPI applications.

Install a plugin package and its code, tables, API routes and UI pages appear;
uninstall it and every trace is gone.
"""

__version__ = "0.1.0"
