"""Nova's v2.0 API, as Nova serves it: the v2.1 API pinned at microversion 2.1.

v2.0 clients put their project in every path (/compute/v2/{project_id}/servers)
and send no microversion. A request under /compute/v2/ is routed to the same
resource under /compute/v2.1 at the minimum microversion, whatever version
headers it carries, and must name the project its token is scoped to.
"""

from __future__ import annotations

import falcon

from ciaostack.compat.microversion import Microversions
from ciaostack.core import errors


class LegacyV2:
    """Falcon middleware; it must come after the microversion middleware, which then
    leaves these requests alone (their path is outside its prefix when it looks)."""

    def __init__(self, prefix: str, microversions: Microversions) -> None:
        self.v2 = f"{prefix}/v2/"
        self.v21 = microversions.prefix
        self.version = microversions.minimum

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        if not req.path.startswith(self.v2):
            return
        project_id, _, rest = req.path[len(self.v2) :].partition("/")
        req.context.v2_project_id = project_id
        req.context.microversion = self.version
        req.path = f"{self.v21}/{rest}" if rest else self.v21

    def process_resource(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        resource: object,
        params: dict,
    ) -> None:
        project_id = getattr(req.context, "v2_project_id", None)
        auth = req.context.auth
        if project_id is None or auth is None or project_id == auth.project_id:
            return
        raise errors.BadRequest(
            f"Malformed request URL: URL's project_id '{project_id}' doesn't match "
            f"Context's project_id '{auth.project_id}'"
        )
