"""The nemesis: a real network of node processes under faults, a workload, and a checker.

The parts, lowest first:

- `history`: the typed record of what the workload asked and what it was told
  (`Transfer`, `Read`, their `Outcome`), saved and re-read as JSON Lines;
- `workload`: the bank workload, transfers among funded accounts through every node
  and reads of their balances, recording every operation (`run_bank_workload`);
- `observe`: what each node holds once the faults are healed, read over its RPC
  (`observe`, `NodeView`), and how soon each node commits again (`watch_recovery`);
- `checker`: a pure function from a history and the nodes' views to the violations
  found (`check`: forks, lost writes, double applies, phantom writes, balances not
  conserved, stale reads, no progress);
- `report`: the faults injected, the operations, the violations and the recovery
  times, as a terminal table and as JSON;
- still to come (issue 19): the peer-link relays, the node processes, the fault
  schedule and `cloudchain chaos` itself, which will drive the parts above.

Only `observe` and `workload` do I/O, and only through `cloudchain.client`: they know
a node as a stranger's client would. The checker and the report are pure.
"""
