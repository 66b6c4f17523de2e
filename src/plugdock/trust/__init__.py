"""Who may publish what: signatures over a package, the instance's trust store, and the key
each plugin id is bound to.
"""
