"""The pose model: the in-memory clip, skeleton layouts (built-in, from a file, YAML), joint-name maps,
per-clip checks at ingest, labels and size limits."""
