"""The operations on installed plugins, each a short composition of shared stages.

- :mod:`.workspace`: the instance an operation works in (settings, engine, source, code folders)
- :mod:`.runner`: named steps and failpoints, the commit tail, undo that never hides the error
- :mod:`.staging`: fetch → extract (every byte verified) → validate, into a private folder
- :mod:`.codefiles`: moving a plugin's code folders in and out of the instance
- :mod:`.install`, :mod:`.uninstall`, :mod:`.upgrade`, :mod:`.toggle`: the operations
- :mod:`.plan`: which dependencies an install needs, in which order
- :mod:`.backup`: a plugin's rows to a zip before uninstall, and back on restore
- :mod:`.recovery`: finishing or undoing what a crash interrupted, per the journal

:class:`plugdock.installer.Installer` is the facade the CLI and the panel call.
"""
