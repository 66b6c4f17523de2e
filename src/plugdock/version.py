"""plugdock's version, in a module of its own: every layer may read it, and the package root
(which re-exports the embedding API from ``host``) imports nothing any layer needs."""

__version__ = "0.1.0"
