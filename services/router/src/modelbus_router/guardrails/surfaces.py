"""Whether a hosted model may see a request under its serving spec: any target, stage,
ensemble judge or cascade judge on a hosted surface. Conservative on purpose: a candidate
the constraints later reject still counts, because redaction happens before planning."""

from __future__ import annotations

from modelbus_router.catalog import CatalogModel, surface_of


def reaches_hosted(catalog: dict[str, CatalogModel], spec) -> bool:
    providers = [catalog[m].provider for m in spec.model_ids()]
    if spec.ensemble is not None and spec.ensemble.judge is not None:
        providers.append(spec.ensemble.judge.provider)
    providers += [t.check.judge.provider for t in spec.targets
                  if t.check is not None and t.check.judge is not None]
    return any(surface_of(p) == "hosted" for p in providers)
