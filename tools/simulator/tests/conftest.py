"""Fixtures for the simulator's own tests: one in-process simulator per session,
reset (behaviours + counters) before every test."""

from __future__ import annotations

import pytest
from modelbus_simulator import SimulatorServer


@pytest.fixture(scope="session")
def sim_server():
    with SimulatorServer() as server:
        yield server


@pytest.fixture
def sim(sim_server: SimulatorServer) -> SimulatorServer:
    sim_server.reset()
    return sim_server
