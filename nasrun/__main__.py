"""`python -m nasrun ...` is the `nasrun` command."""

from nasrun.cli import main

main()
