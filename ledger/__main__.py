"""`python -m ledger` runs the same CLI as the `ftledger` console script."""

from ledger.cli.app import main

main()
