"""The blob exchange: fetching and serving DAGs between nodes, in the manner of Bitswap.

One idea per module, arrows pointing down the list:

    facade.py       BlobExchange, what the node holds: builds the parts, routes
                    each peer message to its part, counts traffic and faults
    replication.py  replicate (ask r - 1 peers to fetch from us, await have-all)
                    and answering peers' fetch-requests (fetch from them, pin)
    fetch.py        one fetch session: walk what is local, store what arrives
                    verified, follow links, resume, progress
    wantlist.py     what one fetch wants from whom, in flight, until when: a
                    state machine with no I/O and no clock
    serving.py      answering peers' want-have and want-block from our store
    wake.py         the wait for an event or a deadline that fetch and
                    replication share
    messages.py     the wire format of the "blob" channel and its strict decoding
    errors.py       what a failed fetch or replication raises

What the package does not know: sockets, envelopes, the consensus; the node
hands it a `send` and its peers' messages. The names below are its public face.
"""

from cloudchain.blobs.exchange.errors import FetchError, NoProvidersError, ReplicationError
from cloudchain.blobs.exchange.facade import BlobExchange, ExchangeCounters
from cloudchain.blobs.exchange.fetch import FetchResult
from cloudchain.blobs.exchange.messages import ExchangeProtocolError

__all__ = [
    "BlobExchange",
    "ExchangeCounters",
    "ExchangeProtocolError",
    "FetchError",
    "FetchResult",
    "NoProvidersError",
    "ReplicationError",
]
