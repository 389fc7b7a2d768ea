"""What one process holds: configuration, datastore, policy and the identity core."""

from __future__ import annotations

from ciaostack.core.config import Config
from ciaostack.core.db.session import Database
from ciaostack.core.identity.auth import Identity
from ciaostack.core.policy import Policy


class Runtime:
    def __init__(self, conf: Config) -> None:
        self.conf = conf
        self.db = Database(conf.database_url)
        self.policy = Policy(conf.get("policy", "file"))
        self.identity = Identity(conf, self.db)
