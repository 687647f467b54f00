"""The oracle daemon: probes providers, re-runs their jobs, attests what it measured."""
