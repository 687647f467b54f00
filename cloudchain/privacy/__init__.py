"""Privacy: sealed (encrypted) datasets; grants, budgets and DP training to come (issue 17)."""
