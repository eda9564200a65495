"""PII detection and redaction: each kind found, checksums respected, ordinary text kept."""

from __future__ import annotations

import pytest
from modelbus_runtime.pii import (
    CARD,
    EMAIL,
    IBAN,
    NATIONAL_ID,
    PHONE,
    contains_pii,
    find_pii,
    iban_ok,
    luhn_ok,
    redact_pii,
)


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("write to ana.maria+billing@acme-corp.co.uk today", EMAIL),
        ("card 4111 1111 1111 1111 expires 12/29", CARD),
        ("card 5500-0000-0000-0004", CARD),
        ("pay to DE89 3704 0044 0532 0130 00 please", IBAN),
        ("pay to GB82WEST12345698765432", IBAN),
        ("my SSN is 123-45-6789", NATIONAL_ID),
        ("NINO AB 12 34 56 C on file", NATIONAL_ID),
        ("call +44 20 7946 0958 now", PHONE),
        ("call (555) 123-4567", PHONE),
        ("call 030 1234 5678", PHONE),
    ],
)
def test_each_kind_is_found_and_redacted(text, kind):
    matches = find_pii(text)
    assert [m.kind for m in matches] == [kind]
    redacted = redact_pii(text)
    assert f"[{kind.upper()}]" in redacted
    assert matches[0].text not in redacted


@pytest.mark.parametrize(
    "text",
    [
        "card 4111 1111 1111 1112 fails Luhn",  # not a valid card number
        "pay to DE89 3704 0044 0532 0130 01",  # IBAN checksum wrong
        "meeting on 2025-03-01 at 12:00:00",
        "the answer is 42 and the year 1999",
        "Kafka is a distributed log with 3 replicas and 12 partitions.",
        "SSN-like 000-12-3456 is never issued",
    ],
)
def test_ordinary_text_and_failed_checksums_are_kept(text):
    assert [m for m in find_pii(text) if m.kind in (CARD, IBAN, NATIONAL_ID, EMAIL)] == []
    if "Kafka" in text or "answer" in text or "2025-03-01" in text:
        assert redact_pii(text) == text
        assert not contains_pii(text)


def test_several_kinds_in_one_text_keep_the_rest_intact():
    text = "Ana <ana@acme.com>, +1 415 555 0100, card 4242424242424242, IBAN FR7630006000011234567890189."
    assert redact_pii(text) == "Ana <[EMAIL]>, [PHONE], card [CARD], IBAN [IBAN]."
    assert [m.kind for m in find_pii(text)] == [EMAIL, PHONE, CARD, IBAN]


def test_kinds_can_be_restricted_and_placeholder_changed():
    text = "ana@acme.com 4111111111111111"
    assert redact_pii(text, kinds=(EMAIL,)) == "[EMAIL] 4111111111111111"
    assert redact_pii(text, placeholder=lambda kind: "***") == "*** ***"


def test_checksums():
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    assert not luhn_ok("41x1")
    assert iban_ok("DE89 3704 0044 0532 0130 00") and not iban_ok("DE89370400440532013001")
    assert not iban_ok("DE89")


@pytest.mark.parametrize(
    "text",
    [
        "HETU 131052-308T on the form",  # Finnish personal identity code, 1900s
        "born 290212A778H",  # 2000s century sign
        "new-style code 071190Y031L",  # century signs added in 2023
    ],
)
def test_finnish_personal_identity_code_is_a_national_id(text):
    assert [m.kind for m in find_pii(text)] == [NATIONAL_ID]


def test_finnish_shape_with_impossible_date_is_not_a_national_id():
    assert [m for m in find_pii("code 451352-308T") if m.kind == NATIONAL_ID] == []


@pytest.mark.parametrize(
    ("text", "phone"),
    [
        ("tel +33 1 42 68 53 00 (mobile)", "+33 1 42 68 53 00"),
        ("+46 8 123 456 78 after 6pm", "+46 8 123 456 78"),
        ("+81 3-1234-5678 after 6pm", "+81 3-1234-5678"),
        ("reach the office at +353 1 234 5678.", "+353 1 234 5678"),
        ("Ring me at +33 (0)1 42 68 53 00 tomorrow", "+33 (0)1 42 68 53 00"),
        ("WhatsApp +46812345678 anytime", "+46812345678"),
        ("tel 0044 20 7946 0000", "0044 20 7946 0000"),
        ("Mobile: 07700 900123", "07700 900123"),
        ("call 212-555-0199 or", "212-555-0199"),
        ("call 4155552671 before noon", "4155552671"),
        ("reach me on +1 (415) 555-2671 ext 12", "+1 (415) 555-2671"),
    ],
)
def test_phone_shapes_are_found_whole(text, phone):
    assert [(m.kind, m.text) for m in find_pii(text)] == [(PHONE, phone)]


@pytest.mark.parametrize(
    "text",
    [
        "reference GB47 NWBK 6420 1464 7286 95 (not an account)",  # IBAN-like, bad check
        "reference DE37 0727 6776 5433 9878 95 (not an account)",
        "The meeting is on 2023-12-31 23:59.",
        "The meeting is on 01.02.2024 10:45.",
        "IP 192.168.100.254",
        "uuid 123e4567-e89b-12d3-a456-426614174000",
        "Invoice INV-2024-000123 is overdue",
        "Invoice no. 0123 456 789 attached",
        "batch 20240115-0042",
        "Tracking 1Z 999 AA1 01 2345 6784",
        "range 100-200-300",
        "range 200-300-4000 rows",
        "The code is 000-00-0000",
        "id 666-12-3456 is invalid",
        "Mix 12 34 56 78 90 12 in step 3",
        "Policy number 2024 0000 1234",
        "Upgrade to version 2.0.0-rc.1 before release.",
        "ref 12345678",
    ],
)
def test_phone_look_alikes_are_kept(text):
    assert find_pii(text) == []
    assert redact_pii(text) == text


def test_long_adversarial_input_is_handled():
    # Many near-miss phone candidates in a row must still be scanned (linear regexes).
    text = "+1 (2) 0 " * 4000 + "call +44 20 7946 0958"
    assert [m.text for m in find_pii(text) if m.kind == PHONE] == ["+44 20 7946 0958"]
