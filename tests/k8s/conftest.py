"""Fixtures for the k8s manifest tests: one rendered overlay per parametrised test."""

from __future__ import annotations

import pytest

from tests.k8s.manifests import OVERLAYS, render


@pytest.fixture(params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def objs(overlay: str):
    return render(overlay)
