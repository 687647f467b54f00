"""The marketplace chaincode: providers, task escrow, SLA attestations, settlement,
rewards, pricing and disputes, as one module (`market.*` transactions, /market/
queries) in several files:

    params.py      the genesis parameters          records.py     the records, typed
    state.py       the state layout: the one       economics.py   Π_p and U_r (eq. 2, 3)
                   reader and writer of records
    module.py      the module and its arguments    registry.py    providers and oracles
    tasks.py       submit, cancel, start, complete lifecycle.py   states, payouts, slash
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
