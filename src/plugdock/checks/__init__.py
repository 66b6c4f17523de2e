"""Checks of a package against this host: core version, dependencies, routes (compat), and the
whole package with its SQL and, on request, its code (validate).
"""
