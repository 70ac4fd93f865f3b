"""`python -m streamforge` = the `streamforge` command."""

from streamforge.cli import main

main()
