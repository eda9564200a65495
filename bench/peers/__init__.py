"""``make bench-peers``: modelbus side by side with the LiteLLM proxy, in one run.

One mock provider (the project's simulator) serves every target; the targets are the mock
itself (the baseline), the LiteLLM proxy with one worker and with one worker per core, the
modelbus gateway (HTTP → Kafka → HTTP) and the modelbus Kafka path (produce a request event,
consume its response). The modules: :mod:`.mock` (the provider), :mod:`.litellm_proxy` (its
own virtual environment and processes), :mod:`.modelbus_stack` (the stack under test),
:mod:`.load` (aiohttp and aiokafka callers), :mod:`.levels` (what is measured),
:mod:`.report` (table, JSON, PNG), :mod:`.__main__` (the command line).
"""
