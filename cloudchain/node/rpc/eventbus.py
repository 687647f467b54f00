"""Subscriptions to committed events, for the RPC's WebSocket (CometBFT's event bus).

A node publishes, for each committed block and in this order, one NewBlock,
one NewBlockHeader and one Tx event per transaction in block order. Each event
carries tags: a map from composite key to values ("tm.event": ["Tx"],
"tx.height": ["5"], "transfer.recipient": ["ab12..."]), and a subscription
receives the events whose tags satisfy its query (the language of tx_search,
matched as CometBFT does: a condition holds if any value under its key
satisfies it).

Subscriptions are counted per client, as CometBFT counts them per remote
address: a WebSocket session is the client of its own subscriptions, and a
broadcast_tx_commit waiting for its transaction holds one subscription under the
client that called it (an HTTP connection, or the WebSocket it came over), so
that max_subscription_clients and max_subscriptions_per_client bound both.

Delivery is exactly once and in order, or not at all: a subscriber's `deliver`
returns False when it cannot take more (its buffer is full), and then every
subscription of that client is cancelled with a reason, never thinned
silently. The bus is synchronous and does no I/O; the WebSocket session
behind `Subscriber` owns the buffer and the socket.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from cloudchain.node.rpc import txquery

Tags = Mapping[str, list[str]]
MAX_QUERY_LENGTH = 512  # CometBFT's maxQueryLength

NOT_PULLING = "client is not pulling messages fast enough"


class SubscriptionError(ValueError):
    """A subscribe or unsubscribe that cannot be done; the message says why."""


class Subscriber(Protocol):
    """One client (a WebSocket connection) holding subscriptions."""

    def deliver(self, subscription: Subscription, data: Any, tags: Tags) -> bool:
        """Queue one event; False if the client's buffer is full."""
        ...

    def cancelled(self, subscription: Subscription, reason: str) -> None:
        """The bus dropped this subscription; tell the client why."""
        ...


@dataclass(frozen=True, eq=False)
class Subscription:
    subscriber: Subscriber
    query: str
    conditions: tuple[txquery.Condition, ...]
    request_id: Any  # the JSON-RPC id of the subscribe request; events carry it

    def matches(self, tags: Tags) -> bool:
        return txquery.matches(self.conditions, tags)


@dataclass(frozen=True)
class BusLimits:
    max_clients: int = 100  # CometBFT's max_subscription_clients
    max_per_client: int = 5  # CometBFT's max_subscriptions_per_client


class EventBus:
    def __init__(self, limits: BusLimits | None = None) -> None:
        self.limits = limits or BusLimits()
        # client -> query -> subscription; insertion-ordered: subscriptions see events in
        # the order they subscribed
        self._subscriptions: dict[Hashable, dict[str, Subscription]] = {}

    @property
    def has_subscribers(self) -> bool:
        return bool(self._subscriptions)

    def has_query(self, query: str) -> bool:
        """Whether some subscriber holds a subscription with exactly this query text."""
        return any(query in held for held in self._subscriptions.values())

    def subscribe(
        self, subscriber: Subscriber, query: str, request_id: Any, client: Hashable | None = None
    ) -> Subscription:
        """Subscribe `subscriber` to `query` under `client` (by default the subscriber
        itself), within the limits on clients and on subscriptions per client."""
        if not isinstance(query, str):
            raise SubscriptionError("query must be a string")
        if len(query) > MAX_QUERY_LENGTH:
            raise SubscriptionError("maximum query length exceeded")
        client = subscriber if client is None else client
        held = self._subscriptions.get(client)
        if held is None and len(self._subscriptions) >= self.limits.max_clients:
            raise SubscriptionError(f"max_subscription_clients {self.limits.max_clients} reached")
        if held is not None and len(held) >= self.limits.max_per_client:
            raise SubscriptionError(
                f"max_subscriptions_per_client {self.limits.max_per_client} reached"
            )
        if held is not None and query in held:
            raise SubscriptionError("already subscribed")
        try:
            conditions = tuple(txquery.parse(query))
        except txquery.QueryError as exc:
            raise SubscriptionError(f"failed to parse query: {exc}") from None
        subscription = Subscription(subscriber, query, conditions, request_id)
        self._subscriptions.setdefault(client, {})[query] = subscription
        return subscription

    def unsubscribe(self, client: Hashable, query: str) -> None:
        held = self._subscriptions.get(client, {})
        if query not in held:
            raise SubscriptionError("subscription not found")
        del held[query]
        if not held:
            del self._subscriptions[client]

    def unsubscribe_all(self, client: Hashable) -> None:
        if self._subscriptions.pop(client, None) is None:
            raise SubscriptionError("subscription not found")

    def subscription_count(self, client: Hashable) -> int:
        return len(self._subscriptions.get(client, {}))

    def publish(self, tags: Tags, make_data: Callable[[], Any]) -> int:
        """Offer one event to every matching subscription; returns how many took it.

        `make_data` builds the event's payload, once, and only if someone wants it."""
        data: Any = None
        built = False
        delivered = 0
        for client, held in list(self._subscriptions.items()):
            for subscription in list(held.values()):
                if not subscription.matches(tags):
                    continue
                if not built:
                    data, built = make_data(), True
                if subscription.subscriber.deliver(subscription, data, tags):
                    delivered += 1
                    continue
                self._cancel_all(client, NOT_PULLING)
                break
        return delivered

    def _cancel_all(self, client: Hashable, reason: str) -> None:
        for subscription in self._subscriptions.pop(client, {}).values():
            subscription.subscriber.cancelled(subscription, reason)
