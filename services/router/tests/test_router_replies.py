"""Reply topics under policy: what a policy may grant, what a request may name, and the
check that a granted topic exists (cached), without a broker."""

from __future__ import annotations

import pytest
from modelbus_router.errors import RoutingError
from modelbus_router.policy import PolicyError, load_policy, parse_policy
from modelbus_router.replies import authorize_reply, granted, is_gateway_topic
from modelbus_router.topic_directory import CachedTopics
from modelbus_schemas import ErrorCode
from modelbus_schemas.topics import APPROVALS_PENDING, RESPONSES, RESULTS, tasks_topic

ROUTES = "routes: {t: {provider: openai, model: m}}\n"
GRANTS = {"*": ["replies.{tenant}.*"], "acme": ["replies.shared.billing"]}


class Existing:
    def __init__(self, *names: str) -> None:
        self.names = set(names)
        self.asked: list[str] = []

    async def exists(self, topic: str) -> bool:
        self.asked.append(topic)
        return topic in self.names


async def refusal(topic: str, tenant: str = "acme", *, gateway: bool = False,
                  directory=None) -> RoutingError:
    with pytest.raises(RoutingError) as refused:
        await authorize_reply(GRANTS, tenant, topic, gateway=gateway,
                              directory=directory or Existing(topic))
    return refused.value


@pytest.mark.parametrize("grant", [tasks_topic("openai"), RESULTS, "__consumer_offsets",
                                   "replies.acme.out.dlq", "modelbus.responses.v1.dlq"])
def test_a_policy_granting_an_internal_topic_refuses_to_load(grant):
    with pytest.raises(PolicyError) as refused:
        parse_policy(ROUTES + f'reply_topics: {{acme: ["{grant}"]}}')
    assert "reply_topics" in str(refused.value) and grant in str(refused.value)
    assert "internal topic" in str(refused.value)


@pytest.mark.parametrize(("grant", "needle"), [
    ("sneaky.sink", "outside the reply topic families"),
    ("{tenant}.replies", "outside the reply topic families"),
    ("modelbus.responses.gateway-*.v1", "reserved for requests the gateway signs"),
    ("replies.a b", "not a topic name or pattern"),
    ("replies.**", "not a topic name or pattern"),
])
def test_a_policy_granting_a_topic_outside_the_reply_families_refuses_to_load(grant, needle):
    with pytest.raises(PolicyError, match="reply_topics") as refused:
        parse_policy(ROUTES + f'reply_topics: {{"*": ["{grant}"]}}')
    assert needle in str(refused.value)


def test_the_default_policy_grants_the_documented_patterns():
    policy = load_policy()
    assert granted(policy.reply_topics, "acme", "replies.acme.billing")
    assert not granted(policy.reply_topics, "acme", "replies.globex.billing")


def test_grants_by_tenant_and_placeholder():
    assert granted(GRANTS, "acme", RESPONSES) and granted({}, "anyone", RESPONSES)
    assert granted(GRANTS, "acme", "replies.acme.orders")
    assert granted(GRANTS, "acme", "replies.shared.billing")
    assert not granted(GRANTS, "globex", "replies.shared.billing"), "acme's grant only"
    assert not granted(GRANTS, "globex", "replies.acme.orders"), "another tenant's topics"
    assert not granted({}, "acme", "replies.acme.orders"), "nothing granted by default"


def test_a_star_is_one_segment_and_the_tenant_is_literal():
    # tenant "acme" must not reach the topics of tenant "acme.x", nor "a*" those of "abc"
    assert not granted(GRANTS, "acme", "replies.acme.x.orders")
    assert granted(GRANTS, "acme.x", "replies.acme.x.orders")
    assert not granted(GRANTS, "a*", "replies.abc.orders")
    assert not granted(GRANTS, "acme", "replies.acme.")


@pytest.mark.parametrize("topic", [tasks_topic("openai"), RESULTS, APPROVALS_PENDING,
                                   "__consumer_offsets", "replies.acme.dlq",
                                   "sneaky.sink", "modelbus.responses.gateway-a.v1"])
async def test_a_request_naming_a_topic_outside_its_grants_is_forbidden(topic):
    existing = Existing(topic)
    refused = await refusal(topic, directory=existing)
    assert refused.code is ErrorCode.FORBIDDEN
    assert repr(topic) in str(refused), "the message names the refused topic"
    assert existing.asked == [], "a refused topic is not even looked up"


async def test_the_gateway_family_is_open_to_gateway_signed_requests_only():
    for topic in ("modelbus.responses.gateway-pod-1.v1", "modelbus.responses.gateway.v1"):
        assert is_gateway_topic(topic)
        await authorize_reply(GRANTS, "acme", topic, gateway=True, directory=Existing(topic))
        assert (await refusal(topic)).code is ErrorCode.FORBIDDEN
    assert not is_gateway_topic("modelbus.responses.gateway.v1.dlq")
    assert (await refusal("modelbus.responses.gateway.v1.dlq", gateway=True)).code \
        is ErrorCode.FORBIDDEN


async def test_a_granted_topic_must_exist_and_the_default_needs_no_lookup():
    nothing = Existing()
    await authorize_reply(GRANTS, "acme", RESPONSES, gateway=False, directory=nothing)
    assert nothing.asked == []
    refused = await refusal("replies.acme.orders", directory=nothing)
    assert refused.code is ErrorCode.INVALID_REQUEST
    assert "'replies.acme.orders' does not exist" in str(refused)
    await authorize_reply(GRANTS, "acme", "replies.acme.orders", gateway=False,
                          directory=Existing("replies.acme.orders"))


async def test_the_topic_list_is_cached_and_a_miss_is_looked_up_again_after_a_second():
    now = [0.0]
    topics = {"replies.acme.a"}

    async def lister() -> set[str]:
        return set(topics)

    cache = CachedTopics(lister, ttl_s=5.0, miss_refresh_s=1.0, clock=lambda: now[0])
    assert await cache.exists("replies.acme.a") and cache.lookups == 1
    topics.add("replies.acme.b")
    assert not await cache.exists("replies.acme.b"), "within a second a miss stays a miss"
    assert await cache.exists("replies.acme.a") and cache.lookups == 1
    now[0] = 1.5
    assert await cache.exists("replies.acme.b") and cache.lookups == 2
    now[0] = 4.0
    assert await cache.exists("replies.acme.a") and cache.lookups == 2, "a hit is kept 5 s"
    topics.discard("replies.acme.a")
    now[0] = 7.0
    assert not await cache.exists("replies.acme.a") and cache.lookups == 3
