"""`python -m nasrun ...` is the `nasrun` command."""

from nasrun.commands.search import main

if __name__ == "__main__":  # a spawned worker process imports this module too: it must not start a search
    main()
