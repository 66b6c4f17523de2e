"""The plugin package format: metadata, layout, safe reading, packing, checksums."""
