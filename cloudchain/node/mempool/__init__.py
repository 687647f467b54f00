"""The node's mempool, split by idea:

    entry.py     one waiting transaction; fee per byte as an exact integer order
    sender.py    one sender's ready run and gapped transactions
    priority.py  the order that fills a block (a heap over the senders' heads)
    eviction.py  whom a full mempool lets go (the cheapest per byte, lazily)
    limits.py    the bounds ([mempool] in config.toml) and the replacement rule
    pool.py      `Mempool`, the one object the node holds: admission, reaping, update

Pure, like consensus/ and chaincode/: no I/O and no clock; the node passes time and
height in (node/runtime.py).
"""

from cloudchain.node.mempool.limits import MempoolLimits
from cloudchain.node.mempool.pool import Admission, Mempool, MempoolApp, MempoolStats

__all__ = ["Admission", "Mempool", "MempoolApp", "MempoolLimits", "MempoolStats"]
