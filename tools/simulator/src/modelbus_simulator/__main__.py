"""`python -m modelbus_simulator` runs the CLI (same as the `modelbus-simulator` script)."""

from .app import main

main()
