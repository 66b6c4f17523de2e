"""The reference panel: a small FastAPI host with auth, the marketplace and live plugins."""
