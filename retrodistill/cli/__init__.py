"""Command-line interface. ``--help`` imports nothing heavy; each command imports what it needs."""
