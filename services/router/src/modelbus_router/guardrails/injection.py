"""Prompt-injection screening: a pluggable detector with a rule-based default.

A detector takes the texts to screen and returns how often each of its rules fired (rule
names, never the text). Register another one (a classifier model, a hosted moderation API)
with :func:`register` and name it in the policy (``guardrails.input.injection.detector``).

The default rules look for the well-known shapes of an injection: instructions to ignore or
override earlier instructions, requests to reveal the system prompt, role-play jailbreaks
("you are now DAN", "developer mode"), and fake conversation markup (``<|im_start|>``,
``</system>``, ``[INST]``) meant to smuggle a new system turn into data.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable

Detector = Callable[[Iterable[str]], Counter[str]]

_RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("override_instructions", re.compile(
        r"(?i)\b(?:ignore|disregard|forget|override|bypass)\b[^.\n]{0,40}?\b(?:previous|prior|"
        r"above|earlier|preceding|all|any|your|the)\b[^.\n]{0,30}?\b(?:instructions?|prompts?|"
        r"rules|directives|guidelines|context)\b")),
    ("reveal_system_prompt", re.compile(
        r"(?i)\b(?:reveal|print|show|repeat|output|leak|tell me)\b[^.\n]{0,40}?\b(?:system|"
        r"hidden|initial|original)\s+(?:prompt|instructions|message)")),
    ("role_hijack", re.compile(
        r"(?i)\b(?:you are now|from now on,? you are|act as|pretend to be)\b[^.\n]{0,40}?"
        r"\b(?:DAN|jailbroken|unfiltered|unrestricted|without (?:any )?(?:rules|restrictions|"
        r"filters))|\b(?:developer|god|jailbreak) mode\b")),
    ("fake_chat_markup", re.compile(
        r"(?i)<\|im_(?:start|end)\|>|<\/?system>|\[\/?INST\]|<<SYS>>|^\s*(?:system|assistant)"
        r"\s*:\s", re.MULTILINE)),
)


def rule_detector(texts: Iterable[str]) -> Counter[str]:
    fired: Counter[str] = Counter()
    for text in texts:
        for name, pattern in _RULES:
            hits = len(pattern.findall(text))
            if hits:
                fired[name] += hits
    return fired


DETECTORS: dict[str, Detector] = {"rules": rule_detector}


def register(name: str, detector: Detector) -> None:
    DETECTORS[name] = detector
