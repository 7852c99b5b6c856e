"""Load the Lingfeng demo park and its demo accounts from fixtures/lingfeng.

Going through the services means the fixture obeys the same rules as the
API (valid geometry, zones inside the community, no overlaps). Every part
is idempotent: what is already there (matched by name or username) is left
alone, so a second ``gridsvc seed lingfeng`` loads nothing twice.

The demo accounts share one password, ``gridsvc-demo`` unless
``GRIDSVC_DEMO_PASSWORD`` is set. They are for trying the system out only.
"""
from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo
from pathlib import Path

from shapely.geometry import shape
from sqlalchemy import select
from sqlalchemy.orm import Session

from geo.io import geometry_from_geojson
from gridsvc.passwords import hash_password
from gridsvc.models import (Community, Department, DepartmentService, OccupancyObservation, ParkingLot, ServiceType,
                            Shift, User, Volunteer, Zone)
from gridsvc.schemas.parking import parse_import
from gridsvc.services import accounts, communities, enterprises, shifts, volunteers, zones
from gridsvc.services.parking_import import import_parking

FIXTURES_DIR = Path(__file__).resolve().parent.parent / "fixtures"
DEFAULT_DEMO_PASSWORD = "gridsvc-demo"

DEPARTMENTS = [
    ("traffic", "交通管理 Traffic and parking"),
    ("housing", "住房保障 Housing"),
    ("labour", "劳动保障 Labour and employment"),
]
VOLUNTEERS = 60
WORKERS = 10

_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗郑梁谢宋唐许韩冯邓曹彭曾萧田董潘袁蔡蒋余于杜叶程魏苏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
_GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华建国红玲斌辉鹏飞燕萍波宁晨浩宇欣怡佳琪子轩梓涵"


@dataclass(frozen=True)
class SeedResult:
    community: Community
    created: bool
    zones: int = 0
    enterprises: int = 0
    users: int = 0
    added: dict[str, int] | None = None  # what a later run added to an existing demo


def _read(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def demo_password() -> str:
    return os.environ.get("GRIDSVC_DEMO_PASSWORD") or DEFAULT_DEMO_PASSWORD


def demo_accounts(liaison_names: dict[str, str]) -> list[dict]:
    """The demo accounts: synthetic names and phone numbers, seeded."""
    rng = random.Random(20200214)

    def person() -> tuple[str, str]:
        name = rng.choice(_SURNAMES) + "".join(rng.choice(_GIVEN) for _ in range(rng.choice((1, 2))))
        phone = "1" + rng.choice("3589") + "".join(str(rng.randrange(10)) for _ in range(9))
        return name, phone

    people = [{"username": "admin", "display_name": "系统管理员 Administrator", "roles": ["admin"]},
              {"username": "planner", "display_name": "规划员 Planner", "roles": ["planner"]}]
    for code, name in sorted(liaison_names.items()):
        people.append({"username": f"liaison-{code.lower()}", "display_name": name, "roles": ["liaison"],
                       "phone": person()[1]})
    for i in range(1, VOLUNTEERS + 1):
        name, phone = person()
        people.append({"username": f"volunteer-{i:03d}", "display_name": name, "roles": ["volunteer"], "phone": phone})
    for code, _ in DEPARTMENTS:
        name, phone = person()
        people.append({"username": f"dept-{code}", "display_name": name, "roles": ["department"], "phone": phone,
                       "departments": [code]})
    for i in range(1, WORKERS + 1):
        name, phone = person()
        people.append({"username": f"worker-{i:03d}", "display_name": name, "roles": ["worker"], "phone": phone})
    return people


def load_demo_accounts(session: Session, liaison_names: dict[str, str]) -> int:
    for code, name in DEPARTMENTS:
        if session.scalar(select(Department).where(Department.code == code)) is None:
            session.add(Department(code=code, name=name))
    session.flush()
    shared_hash = None  # one slow hash for all demo accounts (they share the password)
    created = 0
    for spec in demo_accounts(liaison_names):
        if accounts.find_user(session, spec["username"]) is not None:
            continue
        shared_hash = shared_hash or hash_password(demo_password())
        accounts.create_user(session, password="", password_hash=shared_hash, **spec)
        created += 1
    return created


DEMO_SKILLS = ["traffic_parking", "garbage_sorting", "epidemic_prevention", "civilized_city", "first_aid",
               "inspection", "translation"]


def load_demo_volunteers(session: Session, community: Community) -> int:
    """Profiles for volunteer-001..060: six per zone, team 灵动, one to three skills.

    Every tenth is certified in first aid; the first of each zone does
    traffic and parking guidance, so each zone has someone dispatch can send.
    """

    zone_ids = list(session.scalars(select(Zone.id).where(Zone.community_id == community.id).order_by(Zone.code)))
    if not zone_ids:
        return 0
    rng = random.Random(1020)
    created = 0
    for i in range(1, VOLUNTEERS + 1):
        user = accounts.find_user(session, f"volunteer-{i:03d}")
        if user is None or session.scalar(select(Volunteer.id).where(Volunteer.user_id == user.id)) is not None:
            continue
        skills = set(rng.sample(DEMO_SKILLS[:4], rng.choice((1, 2))))
        if i % 6 == 1:
            skills.add("traffic_parking")
        if i % 10 == 0:
            skills.add("first_aid")
        evening = {"weekday": rng.randint(1, 5), "start": "18:00", "end": "21:00"}
        weekend = {"weekday": rng.choice((6, 7)), "start": "08:00", "end": "12:00"}
        # who guides the morning-peak traffic (the demo's shifts) is free two weekday mornings: a liaison's
        # free_for search finds them (drawn without the random sequence, which the other fields keep)
        mornings = ([{"weekday": day, "start": "07:00", "end": "09:30"} for day in sorted({i % 5 + 1, (i + 2) % 5 + 1})]
                    if "traffic_parking" in skills else [])
        volunteers.register(session, user_id=user.id, real_name=user.display_name, phone=user.phone,
                            team="灵动", home_zone_id=zone_ids[(i - 1) % len(zone_ids)], skills=sorted(skills),
                            national_volunteer_id=f"ZJ-NB-{330206_000 + i}",
                            availability=[*mornings, evening, weekend])
        created += 1
    return created


def load_demo_shifts(session: Session, community: Community, now: datetime) -> int:
    """Four weeks of weekday morning-peak traffic shifts at each zone, from today on the community's clock.
    Today's, when seeded after it is over, is left out: nobody could sign up for it, and it would sit in the
    lists as a shift that never ran."""

    if session.scalar(select(Shift.id).where(Shift.community_id == community.id).limit(1)) is not None:
        return 0
    today = now.astimezone(ZoneInfo(community.timezone)).date()
    created = 0
    for zone in session.scalars(select(Zone).where(Zone.community_id == community.id).order_by(Zone.code)):
        created += len(shifts.create_series(
            session, zone_id=zone.id, title=f"{zone.code} 早高峰交通疏导 Morning-peak traffic guidance",
            activity="traffic_guidance", weekdays=[1, 2, 3, 4, 5], start_time=time(7, 30), end_time=time(9, 0),
            from_date=today, until_date=today + timedelta(days=27), capacity=3, required_skills=["traffic_parking"],
            now=now))
    return created


def load_demo_parking(session: Session, community: Community, directory: Path, now: datetime) -> int:
    """The parking inventory (fixtures/lingfeng/parking.geojson) through the importer,
    and two days of 15-minute occupancy counts for every lot."""

    path = directory / "parking.geojson"
    if not path.exists() or session.scalar(select(ParkingLot.id).where(ParkingLot.community_id == community.id).limit(1)):
        return 0
    report = parse_import(_read(path))
    result = import_parking(session, report.items, parse_errors=report.errors, now=now)
    load_demo_occupancy(session, community, now)
    return result.lots + result.spaces


def load_demo_occupancy(session: Session, community: Community, now: datetime) -> int:
    """Counts every 15 minutes from yesterday 00:00 until now: quiet nights, a
    morning peak as shifts start, full during working hours, light weekends."""

    tz = ZoneInfo(community.timezone)
    start = datetime.combine(now.astimezone(tz).date() - timedelta(days=1), time.min, tz)
    rng = random.Random(620)
    rows = []
    lots = session.scalars(select(ParkingLot).where(ParkingLot.community_id == community.id)
                           .order_by(ParkingLot.id)).all()
    for lot in lots:
        busy = rng.uniform(0.75, 1.0) if lot.access == "employees" else rng.uniform(0.4, 0.8)
        at = start
        while at <= now:
            local = at.astimezone(tz)
            hour = local.hour + local.minute / 60
            if local.isoweekday() >= 6:
                level = 0.25
            elif 7 <= hour < 8.5:
                level = 0.2 + 0.8 * (hour - 7) / 1.5
            elif 8.5 <= hour < 17.5:
                level = 1.0
            elif 17.5 <= hour < 19:
                level = 1.0 - 0.8 * (hour - 17.5) / 1.5
            else:
                level = 0.12
            by_type = {t: min(n, round(n * busy * level * rng.uniform(0.92, 1.05)))
                       for t, n in lot.capacity.items() if n}
            rows.append(OccupancyObservation(lot_id=lot.id, observed_at=at, occupied=sum(by_type.values()),
                                             by_type=by_type))
            at += timedelta(minutes=15)
    session.add_all(rows)
    session.flush()
    return len(rows)


# The Lingfeng service list (服务清单): code, names, group, skill, department, first-response SLA (minutes), attributes.
SERVICES = [
    ("parking", "停车", "Parking", "daily life", "traffic_parking", "traffic", 30,
     [{"code": "plate", "datatype": "string", "required": False, "description": "licence plate, if a car is involved"},
      {"code": "problem", "datatype": "singlevaluelist", "required": True, "description": "what is wrong",
       "values": [{"key": "no_space", "name": "找不到车位 No space"}, {"key": "blocked", "name": "被堵 Blocked in"},
                  {"key": "illegal", "name": "违停 Illegal parking"}]}]),
    ("housing", "住房", "Housing", "daily life", None, "housing", 240,
     [{"code": "household", "datatype": "number", "required": False, "description": "people in the household",
       "integer": True, "minimum": 1, "maximum": 100}]),
    ("commute", "通勤", "Commuting", "daily life", "traffic_parking", "traffic", 120, []),
    ("schooling", "子女入学", "Children's schooling", "family", None, "housing", 1440, []),
    ("medical", "就医", "Medical care", "health", "first_aid", "labour", 15, []),
    ("culture_sports", "文体活动", "Culture and sports", "community life", None, None, 1440, []),
    ("reopening_inspection", "复工检查", "Reopening inspection", "enterprise", "inspection", "labour", 240,
     [{"code": "enterprise", "datatype": "string", "required": True, "description": "the enterprise to inspect"}]),
    ("epidemic_prevention", "疫情防控", "Epidemic prevention", "health", "epidemic_prevention", "labour", 60, []),
    ("labour_dispute", "劳动纠纷", "Labour dispute", "enterprise", None, "labour", 480, []),
    ("other", "其他", "Other", "other", None, None, 240, []),
]


def load_demo_services(session: Session) -> int:

    created = 0
    departments = {d.code: d.id for d in session.scalars(select(Department))}
    for code, zh, en, group, skill, department, sla, attributes in SERVICES:
        if session.get(ServiceType, code) is not None:
            continue
        session.add(ServiceType(code=code, name_zh=zh, name_en=en, group=group, required_skill=skill,
                                department_id=departments.get(department), sla_minutes=sla, attributes=attributes))
        session.flush()
        if department in departments:
            session.add(DepartmentService(department_id=departments[department], service_code=code))
        created += 1
    session.flush()
    return created


def _link_liaisons(session: Session, community: Community) -> None:
    """Give demo zones without a liaison their demo liaison account."""
    for zone in session.scalars(select(Zone).where(Zone.community_id == community.id, Zone.liaison_id.is_(None))):
        user = accounts.find_user(session, f"liaison-{zone.code.lower()}")
        if user is not None:
            zone.liaison_id = user.id
    session.flush()


def accounts_of_its_own(session: Session, directory: Path = FIXTURES_DIR / "lingfeng") -> list[str]:
    """The usernames (a few) of the accounts of a database the demo was never loaded into: a real deployment's,
    even one whose only account is its ``admin``. Why: the demo adds 85 accounts, an ``admin`` among them,
    whose password is public (the README's); ``make run`` on an existing server's ``DATABASE_URL`` would have
    added them to its people. A database with no account yet is a new install: the demo may go there."""
    props = _read(directory / "community.geojson")["properties"]
    if session.scalar(select(Community.id).where(Community.name == props["name"])) is not None:
        return []  # the demo's own database, perhaps with accounts added while trying it out
    return list(session.scalars(select(User.username).order_by(User.id).limit(3)))


def load_lingfeng(session: Session, directory: Path = FIXTURES_DIR / "lingfeng") -> SeedResult:
    feature = _read(directory / "community.geojson")
    props = feature["properties"]
    zone_features = _read(directory / "zones.geojson")["features"]
    liaison_names = {zf["properties"]["code"]: zf["properties"]["liaison"] for zf in zone_features}
    users = load_demo_accounts(session, liaison_names)
    load_demo_services(session)

    existing = session.scalar(select(Community).where(Community.name == props["name"]))
    if existing is not None:
        _link_liaisons(session, existing)
        added = {"demo accounts": users,
                 "volunteer profiles": load_demo_volunteers(session, existing),
                 "shifts": load_demo_shifts(session, existing, datetime.now(timezone.utc)),
                 "parking features": load_demo_parking(session, existing, directory, datetime.now(timezone.utc))}
        return SeedResult(community=existing, created=False, users=users, added={k: v for k, v in added.items() if v})
    community = communities.create_community(
        session, name=props["name"], kind=props["kind"], boundary=geometry_from_geojson(feature["geometry"]),
        enterprise_count=props.get("enterprise_count"), worker_count=props.get("worker_count"),
        timezone=props.get("timezone", "Asia/Shanghai"))
    for zf in zone_features:
        p = zf["properties"]
        zones.create_zone(session, community.id, code=p["code"], name=p["name"], liaison=f"liaison-{p['code'].lower()}",
                          geometry=geometry_from_geojson(zf["geometry"]))
    enterprise_features = _read(directory / "enterprises.geojson")["features"]
    for ef in enterprise_features:
        enterprises.create_enterprise(session, community.id, name=ef["properties"]["name"],
                                      workers=ef["properties"]["workers"], location=shape(ef["geometry"]))
    load_demo_volunteers(session, community)
    load_demo_shifts(session, community, datetime.now(timezone.utc))
    load_demo_parking(session, community, directory, datetime.now(timezone.utc))
    return SeedResult(community=community, created=True, zones=len(zone_features),
                      enterprises=len(enterprise_features), users=users)
