"""``python -m maskctl`` runs the command line."""

from maskctl.cli import main

main()
