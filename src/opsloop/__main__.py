"""``python -m opsloop`` runs the CLI."""

from opsloop.cli.main import main

main()
