"""Tendermint BFT consensus as a pure state machine (no I/O, no clock, no randomness).

Events go in (`Consensus.handle`), effects come out; the node executes them.
"""
