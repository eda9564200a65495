"""Which topics exist, from the broker's metadata, cached: the router's answer to
:class:`modelbus_router.replies.TopicDirectory`.

Publishing to a topic that does not exist makes a broker with ``auto.create.topics.enable``
create it, outside every ACL, retention setting and audit pattern; so before a response goes
to a reply topic other than the default, the router asks this directory whether it exists.
It lists the broker's topics with an admin client (a metadata request naming no topic, which
never creates one) and keeps the list for ``ttl_s`` seconds. A topic missing from the list
is looked up again at most every ``miss_refresh_s`` seconds (a topic created a moment ago is
found without waiting for the whole TTL); concurrent lookups share one request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from modelbus_runtime.errors import TransientInfraError

log = logging.getLogger(__name__)

Lister = Callable[[], Awaitable[set[str]]]


class CachedTopics:
    """The broker's topic names, refreshed through ``lister`` at most every few seconds."""

    def __init__(self, lister: Lister, *, ttl_s: float = 5.0, miss_refresh_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._list = lister
        self.ttl_s = ttl_s
        self.miss_refresh_s = miss_refresh_s
        self._clock = clock
        self._topics: set[str] = set()
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()
        self.lookups = 0  # metadata requests made (for tests and metrics)

    def _age(self) -> float:
        return float("inf") if self._fetched_at is None else self._clock() - self._fetched_at

    async def exists(self, topic: str) -> bool:
        if self._age() < self.ttl_s and topic in self._topics:
            return True
        if self._age() < self.miss_refresh_s:
            return topic in self._topics
        async with self._lock:
            if self._age() >= self.miss_refresh_s:  # nobody refreshed while we waited
                try:
                    self._topics = await self._list()
                except (KafkaError, OSError) as exc:
                    raise TransientInfraError(
                        f"cannot list the broker's topics: {exc.__class__.__name__}") from exc
                self._fetched_at = self._clock()
                self.lookups += 1
        return topic in self._topics


class BrokerTopics(CachedTopics):
    """:class:`CachedTopics` over an aiokafka admin client, started on first use."""

    def __init__(self, client_options: dict[str, object], **kwargs) -> None:
        """``client_options``: the service's aiokafka options (bootstrap servers and any
        SASL credentials, :meth:`RuntimeSettings.kafka_client_options`)."""
        super().__init__(self._list_topics, **kwargs)
        self._client_options = client_options
        self._admin: AIOKafkaAdminClient | None = None

    async def _list_topics(self) -> set[str]:
        if self._admin is None:
            admin = AIOKafkaAdminClient(**self._client_options)
            await admin.start()
            self._admin = admin
        return set(await self._admin.list_topics())

    async def close(self) -> None:
        if self._admin is not None:
            await self._admin.close()
            self._admin = None
