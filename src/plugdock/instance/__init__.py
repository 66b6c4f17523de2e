"""The instance's own state: the rows and files that say what is installed (registry, package
store, audit, journal), the operation lock, the change hints to other workers, and the
instance folder's file modes.
"""
