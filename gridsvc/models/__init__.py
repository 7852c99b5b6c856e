"""ORM classes; importing this package registers every table on ``Base.metadata``."""
from gridsvc.models.community import COMMUNITY_KINDS, Community, Zone
from gridsvc.models.counts import COUNTED_TABLES, RowCount
from gridsvc.models.enterprise import Enterprise
from gridsvc.models.parking import (CAR_USABLE, PARKING_ACCESS, PARKING_KINDS, SPACE_STATUSES, SPACE_TYPES,
                                     OccupancyObservation, ParkingLot, ParkingSpace)
from gridsvc.models.request import (OPEN_STATUSES, REQUEST_STATUSES, DepartmentService, RequestEvent, RequestOffer,
                                     ServiceRequest, ServiceType)
from gridsvc.models.shift import MAX_SHIFT_RADIUS_M, CheckEvent, ServiceHours, Shift, ShiftSkill, Signup
from gridsvc.models.user import (PASSWORD_LENGTH, ROLES, ApiKey, Department, DepartmentMember, IdempotentRequest, LoginFailure,
                                 RefreshTokenUse, User, UserRole)
from gridsvc.models.volunteer import Skill, Volunteer, VolunteerPosition, VolunteerSkill

__all__ = ["ApiKey", "OPEN_STATUSES", "REQUEST_STATUSES", "DepartmentService", "RequestEvent", "RequestOffer", "ServiceRequest",
           "ServiceType", "CAR_USABLE", "PARKING_ACCESS", "PARKING_KINDS", "SPACE_STATUSES", "SPACE_TYPES", "OccupancyObservation",
           "ParkingLot", "ParkingSpace", "COMMUNITY_KINDS", "PASSWORD_LENGTH", "ROLES", "CheckEvent", "Community", "Department", "DepartmentMember",
           "Enterprise", "IdempotentRequest", "LoginFailure", "RefreshTokenUse", "ServiceHours", "Shift", "ShiftSkill", "Signup", "Skill", "User",
           "UserRole",
           "Volunteer", "VolunteerPosition", "VolunteerSkill", "Zone", "COUNTED_TABLES", "RowCount", "MAX_SHIFT_RADIUS_M"]
