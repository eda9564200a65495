"""Policy replay: route recorded requests under a candidate policy without calling any
provider or touching the router's state, and report what would change — models, strategy,
rejections, estimated cost, refusals, and the models and surfaces a request's data would
newly reach.

- :mod:`~modelbus_router.replay.decide` — one request under one policy, side-effect free
  (the live engine's own resolve/screen/plan code; also used by shadow routing);
- :mod:`~modelbus_router.replay.recorded` — a recorded request and its outcome then;
- :mod:`~modelbus_router.replay.audit_source` / :mod:`~modelbus_router.replay.topic_source`
  — where recorded requests come from (the audit store; the requests topic);
- :mod:`~modelbus_router.replay.compare` — then versus now for one request, cost estimate;
- :mod:`~modelbus_router.replay.report` / :mod:`~modelbus_router.replay.html` — totals,
  table, JSON, and a self-contained HTML page;
- :mod:`~modelbus_router.replay.limits` — the candidate's budgets and quotas, simulated in
  memory over the recorded times;
- :mod:`~modelbus_router.replay.run` — the streaming loop;
- :mod:`~modelbus_router.replay.counterfactual` / :mod:`~modelbus_router.replay.execute` —
  counterfactual execution of a sample (``modelbus replay --execute``): which requests, the
  tasks and judge task to send, the report's rows; then sending them through the workers
  under the run's own budget and reply topic.

Knows nothing of Kafka except the topic source, which reads the log with a plain consumer,
and the executor, which publishes the run's tasks and reads its reply topic.
"""

from modelbus_router.replay.decide import PARKED, REFUSED, SERVED, DryDecision, decide
from modelbus_router.replay.recorded import Recorded, Then
from modelbus_router.replay.report import Report
from modelbus_router.replay.run import replay

__all__ = ["PARKED", "REFUSED", "SERVED", "DryDecision", "Recorded", "Report", "Then",
           "decide", "replay"]
