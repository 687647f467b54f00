"""Privacy: sealed datasets (sealed.py), data keys wrapped for grantees (wrapping.py),
the DP accountant (accountant.py) and the chain's units for ε and δ (units.py)."""
