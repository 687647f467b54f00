"""The marketplace chaincode: providers, task escrow, SLA attestations, settlement,
rewards, pricing and disputes, as one module (`market.*` transactions, /market/
queries) in several files:

    params.py      the genesis parameters          state.py       the state layout
    module.py      the module and its arguments    registry.py    providers and oracles
    tasks.py       submit, cancel, start, complete lifecycle.py   states and payouts
    sla.py         attestations and outcomes       disputes.py    disputes and votes
    assignment.py  matching tasks to providers     epoch.py       rewards and prices
    end_block.py   the end-of-block work           queries.py     the queries
"""

from cloudchain.chaincode.market import (  # noqa: F401 - each registers its handlers
    disputes,
    end_block,
    queries,
    registry,
    sla,
    tasks,
)
from cloudchain.chaincode.market.module import MARKET

__all__ = ["MARKET"]
