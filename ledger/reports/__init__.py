"""Reports read the ledger: the monthly report, its renderers, FOCUS, what-if, reconciliation.

Every number is summed in SQL over integer pico-USD and shown through one text helper,
so each format prints the same digits.
"""
