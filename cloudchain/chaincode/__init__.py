"""The replicated application behind an ABCI-shaped boundary, and its modules.

Nothing here does I/O of its own, reads a clock or draws randomness: state
comes in through the store handed to the `Application`, time comes from the
block header, and the same blocks always give the same results and app hash.
"""
