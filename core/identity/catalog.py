"""The service catalog a token carries, built from services and endpoints."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ciaostack.core.db.models import Endpoint, Service


def build_catalog(session: Session) -> list[dict[str, Any]]:
    services = session.scalars(select(Service).where(Service.enabled.is_(True))).all()
    endpoints = session.scalars(select(Endpoint).where(Endpoint.enabled.is_(True))).all()
    by_service: dict[str, list[dict[str, Any]]] = {}
    for ep in endpoints:
        by_service.setdefault(ep.service_id, []).append(
            {
                "id": ep.id,
                "interface": ep.interface,
                "region": ep.region_id,
                "region_id": ep.region_id,
                "url": ep.url,
            }
        )
    return [
        {"id": s.id, "type": s.type, "name": s.name, "endpoints": by_service.get(s.id, [])}
        for s in sorted(services, key=lambda s: (s.type, s.id))
    ]
