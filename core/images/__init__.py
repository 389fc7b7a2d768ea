"""The image core behind Glance v2: records, sharing and data, with no HTTP in sight.

`ImageService(conf, db)` is what one process holds: `images` (records, tags,
(de)activation), `members` (sharing) and `data` (upload, import, download),
all over one store chosen by `[image] store`.
"""

from __future__ import annotations

from ciaostack.core.config import Config
from ciaostack.core.db.session import Database
from ciaostack.core.images.members import ImageMembers
from ciaostack.core.images.service import Images, Limits, split_list
from ciaostack.core.images.store import open_store
from ciaostack.core.images.transfer import ImageData
from ciaostack.core.images.webdownload import AllowList


class ImageService:
    def __init__(self, conf: Config, db: Database) -> None:
        self.store = open_store(conf)
        self.images = Images(db, self.store, Limits.from_conf(conf))
        self.members = ImageMembers(self.images)
        self.data = ImageData(
            self.images, AllowList(list(split_list(conf.get("image", "web_download_allow"))))
        )
