"""Shared helpers: config loader, mel front-end, audio I/O, atomic files, CLI plumbing, the prepared-data layout.
Imports only libraries (the lowest layer)."""
