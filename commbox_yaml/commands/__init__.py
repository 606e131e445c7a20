"""One module per command; each exposes `add_parser` and `run(ctx, args) -> int`."""
