"""Entry point of the one-file executable (PyInstaller needs a script, not a module)."""

from relay.cli import main

if __name__ == "__main__":
    main()
