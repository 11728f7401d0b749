"""Many inputs through :func:`specinv_cli.api.invert`: expanding the command line's inputs
(:mod:`.inputs`), the per-file pipeline with cross-file batches and safe outputs
(:mod:`.pipeline`), and long inputs in overlapping blocks (:mod:`.blocks`)."""
