"""From what a job used to the compute units the chain pays for.

The rule, the same for every provider and every oracle that checks one:

    units = max(1, ceil(cpu_ms / CPU_MS_PER_UNIT))

where cpu_ms is the user plus system CPU time of the job's child process and its
children, from the kernel's rusage (os.wait4), never from the job's own word. One
compute unit is one CPU-second. A job that needs more than the task bought is stopped by
its CPU limit before it can claim more; what is reported is never more than the task's
units (`market.complete` refuses more).

Wall-clock time, memory and a GPU's time are not metered: a task buys a resource class
(a GPU model, its memory) at a price per unit, and the unit counts the CPU work done on
it. Oracles re-running a job measure their own CPU time and attest that.
"""

from __future__ import annotations

CPU_MS_PER_UNIT = 1_000


def compute_units(cpu_ms: int, bought: int) -> int:
    """The units to report for a job that used `cpu_ms` of CPU time, of `bought`."""
    if cpu_ms < 0 or bought < 1:
        raise ValueError(f"cpu_ms {cpu_ms} and bought {bought}: not a measurement")
    used = max(1, -(-cpu_ms // CPU_MS_PER_UNIT))
    return min(used, bought)


def cpu_seconds_for(units: int) -> int:
    """The CPU limit that lets a job use no more than `units`."""
    return units * CPU_MS_PER_UNIT // 1000
