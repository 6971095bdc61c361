"""One module per CLI subcommand: `configure(parser)`, `run(args) -> int` (help and examples: `adacompress.cli`)."""
