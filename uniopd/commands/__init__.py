"""The `uniopd` commands: `cli` parses and dispatches, one module per command family below it."""
