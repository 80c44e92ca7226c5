"""`python -m reconciler` is the `reconciler` command."""

from reconciler.cli.main import main

main()
