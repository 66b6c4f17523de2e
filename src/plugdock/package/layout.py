"""Names inside a plugin package. Everything else at the top level is refused."""

METADATA_FILE = "metadata.json"
CHECKSUMS_FILE = "CHECKSUMS.sha256"
SIGNATURE_FILE = "SIGNATURE.json"

CODE_DIRS = ("backend", "frontend", "migrations")
TOP_LEVEL_FILES = (
    METADATA_FILE,
    CHECKSUMS_FILE,
    SIGNATURE_FILE,
    "README.md",
    "LICENSE",
    "CHANGELOG.md",
)


def package_filename(plugin_id: str, version: str) -> str:
    """The canonical file name of a packed plugin: ``<id>_v<version>.zip``."""
    return f"{plugin_id}_v{version}.zip"
