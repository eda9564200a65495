"""Consumer lag per assigned partition, from what the last fetch told the client (no I/O)."""

from __future__ import annotations

import time

from aiokafka.structs import TopicPartition

from modelbus_runtime.metrics import CONSUMER_LAG


class LagReporter:
    """Sets ``modelbus_consumer_lag`` for a consumer's partitions at most once a second."""

    def __init__(self, consumer, group_id: str, every_s: float = 1.0) -> None:
        self.consumer = consumer
        self.group_id = group_id
        self.every_s = every_s
        self._last = 0.0

    def report(self, assigned: set[TopicPartition]) -> None:
        now = time.monotonic()
        if now - self._last < self.every_s:
            return
        self._last = now
        for tp in assigned:
            highwater = self.consumer.highwater(tp)
            position = self._known_position(tp)
            if highwater is None or position is None:
                continue
            CONSUMER_LAG.labels(self.group_id, tp.topic, str(tp.partition)).set(
                max(0, highwater - position))

    def _known_position(self, tp: TopicPartition) -> int | None:
        """The fetch position if the client already knows it; never waits for one."""
        try:
            state = self.consumer._subscription.subscription.assignment.state_value(tp)
        except AttributeError:  # not assigned any more
            return None
        return state.position if state is not None and state.has_valid_position else None
