"""CloudChain: a permissioned BFT ledger and a decentralized marketplace for AI compute."""

__version__ = "0.1.0"
