"""Deterministic simulators of the network, for the consensus core."""
