"""`python -m couponapi` runs the command line."""

from couponapi.cli import main

main()
