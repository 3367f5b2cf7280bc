"""The command line: parsing and the thin handlers of each subcommand."""
