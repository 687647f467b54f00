"""What a task asks for and what it returns, as both sides read it: the manifest
(manifest.py, with the allow-list of algorithms.py), the rule that turns CPU time into
compute units (metering.py) and the result index a provider publishes (result.py).

Pure: no I/O, nothing of the node, so that the requester's client, the provider and the
oracle all check the same bytes by the same code.
"""
