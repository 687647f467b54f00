"""Helpers shared by the tests, one module per area; no test module imports another."""
