"""Audit service settings (environment, prefix ``MODELBUS_``), on top of the runtime's.

``MODELBUS_AUDIT_TEXT_MODE`` ``redact`` (default) | ``hashes`` | ``full`` and
``MODELBUS_AUDIT_REDACT_KINDS`` (comma list, default all of :data:`modelbus_runtime.pii.KINDS`)
decide what text is stored (:mod:`modelbus_audit.privacy`); ``MODELBUS_AUDIT_API_KEYS`` holds
the hashed API keys with roles (:mod:`modelbus_audit.auth`); ``MODELBUS_AUDIT_RETENTION_DAYS``
(0 = keep text forever) and ``MODELBUS_AUDIT_RETENTION_INTERVAL_S`` drive the retention purge;
``MODELBUS_AUDIT_GROUP_ID`` names the consumer group (one group audits each message once);
``MODELBUS_AUDIT_FETCH_MAX_WAIT_MS`` is its consumer's long poll;
``MODELBUS_AUDIT_CHECKPOINT_INTERVAL_S`` how often the written chain heads are signed.
``MODELBUS_AUDIT_ARCHIVE_*`` name the customer's bucket (:mod:`modelbus_audit.archive_target`;
the credentials are secrets, never shown) and ``MODELBUS_AUDIT_ARCHIVE_AFTER_DAYS`` (0 = never)
when a closed day is archived and then dropped from the live store
(:mod:`modelbus_audit.archive`); ``MODELBUS_AUDIT_MAINTENANCE_INTERVAL_S`` how often the
partitions ahead are created and closed days archived.
"""

from __future__ import annotations

from modelbus_runtime.pii import KINDS
from modelbus_runtime.settings import RuntimeSettings
from pydantic import Field, SecretStr

from modelbus_audit.auth import ApiKeys
from modelbus_audit.privacy import PrivacyPolicy, TextMode


class AuditSettings(RuntimeSettings):
    max_message_bytes: int = 64 * 1024 * 1024  # audit records everything, even oversized poison
    # Audit is off the request path: a long fetch wait costs it latency nobody waits for,
    # and saves the broker answering a poll of every topic every 5 ms (see the benchmark).
    # Its own setting, so tuning the request path's MODELBUS_FETCH_MAX_WAIT_MS leaves it be.
    audit_fetch_max_wait_ms: int = Field(default=200, gt=0)
    # ... and it fetches at most every 250 ms, so records arriving in between come as one
    # batch and one transaction: audit's CPU per request went from 12.2 to 5.4 ms at
    # 25 req/s and from 4.7 to 2.1 ms at 100 req/s (bench/pipeline_bench.py). Lineage lags
    # the events by at most this much more.
    audit_min_fetch_interval_ms: int = Field(default=250, ge=0)
    # At rest its fetches wait this long: its one fetch covers every partition of every
    # topic, which is most of what an idle stack costs the local broker (tansu answers a
    # fetch in time that grows with the partitions it names); the first records after a
    # quiet spell are recorded up to this much later.
    audit_idle_fetch_max_wait_ms: int = Field(default=2000, gt=0)
    audit_group_id: str = "modelbus-audit"
    audit_text_mode: TextMode = TextMode.REDACT
    audit_redact_kinds: str = ",".join(KINDS)
    audit_api_keys: str = Field(default="", repr=False)
    audit_retention_days: float = Field(default=0.0, ge=0)
    audit_retention_interval_s: float = Field(default=3600.0, gt=0)
    audit_checkpoint_interval_s: float = Field(default=300.0, gt=0)
    audit_archive_bucket: str = ""
    audit_archive_prefix: str = "modelbus-audit"
    audit_archive_endpoint_url: str = ""
    audit_archive_region: str = "us-east-1"
    audit_archive_access_key_id: str = Field(default="", repr=False)
    audit_archive_secret_access_key: SecretStr = Field(default=SecretStr(""), repr=False)
    audit_archive_after_days: int = Field(default=0, ge=0)
    audit_maintenance_interval_s: float = Field(default=3600.0, gt=0)

    def privacy_policy(self) -> PrivacyPolicy:
        kinds = tuple(k.strip() for k in self.audit_redact_kinds.split(",") if k.strip())
        return PrivacyPolicy(self.audit_text_mode, kinds)

    def api_keys(self) -> ApiKeys:
        return ApiKeys.parse(self.audit_api_keys)
