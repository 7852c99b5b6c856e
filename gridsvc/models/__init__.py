"""ORM classes; importing this package registers every table on ``Base.metadata``."""
from gridsvc.models.community import COMMUNITY_KINDS, Community, Zone
from gridsvc.models.enterprise import Enterprise

__all__ = ["COMMUNITY_KINDS", "Community", "Enterprise", "Zone"]
