"""ORM classes; importing this package registers every table on ``Base.metadata``."""
from gridsvc.models.community import COMMUNITY_KINDS, Community, Zone
from gridsvc.models.enterprise import Enterprise
from gridsvc.models.user import ROLES, Department, DepartmentMember, LoginFailure, User, UserRole

__all__ = ["COMMUNITY_KINDS", "ROLES", "Community", "Department", "DepartmentMember", "Enterprise", "LoginFailure",
           "User", "UserRole", "Zone"]
