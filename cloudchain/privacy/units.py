"""The privacy parameters as the chain writes them: integers, as every amount on chain.

    ε  in millionths (micro-ε): a dataset's budget, a task's spend
    δ  in parts per 10^12

One definition for the chaincode (modules/access.py), the client that sends them
(client/datasets.py), the provider that checks a task's terms (workload/privacy_terms.py)
and the accountant that rounds what a run spends (privacy/accountant.py).
"""

MICRO_EPS = 10**6
DELTA_SCALE = 10**12
