"""Small shared helpers (command-line config handling, plots)."""
