"""checkin: check-ins (and the check-outs that end those stints) over HTTP under
gunicorn with 10,000 volunteers and 1,000 open shifts, against a trivial
endpoint (liveness, no database) of the same server in the same run. Load
comes from wrk (Debian package ``wrk``) on loopback, each request a
different volunteer with their own token, shift and Idempotency-Key;
positions are GCJ-02, as phones send them.

    python -m bench checkin [--volunteers 10000] [--shifts 1000] [--seconds 1] [--rounds 9] [--groups 3]
                            [--connections 32] [--workers 2] [--threads 1]

The volunteers (but the warm-up's) are split into ``--groups`` groups; round
i checks in group i mod groups, and then those of the group who checked in
check out again, timed too (a shift's end, when everyone leaves at once);
any the round's check-outs did not reach are checked out untimed, through
the same database function. The group is then ready to start a new stint
when its turn comes back. So more rounds than 10,000 volunteers would last,
each check-in a real first one of a stint and each check-out one that ends
it (a repeat of the same request would only replay the stored answer).

Goal (issue 4): at least 800 check-ins/s on 2 cores and at least 40% of the
trivial endpoint's rate. Check-outs have no goal of their own; they record
the stint's hours too, so cost more.

Each round also shows the CPU time per request (from /proc) of the API
server, the database's backends and the whole machine: the rates of a shared
VM drift within seconds, while these say where a check-in's time goes and
how many trivial requests it costs (0.40 allows 2.5).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import shutil
import statistics
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlsplit

from flask_jwt_extended import create_access_token
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from bench.common import CpuMeter, bench_database_url, database_on_own_core, print_table, run_wrk, served, settle_tables, time_wait_sockets
from geo.crs import from_wgs84
from gridsvc.app import create_app
from gridsvc.passwords import hash_password
from gridsvc.seed import load_lingfeng

SECRET = "bench-secret-" + "x" * 32
WARM_UP_VOLUNTEERS = 1_000

# Back off duty after a round, as the app's check-out records it (the
# function the API calls, for every volunteer of the group on duty; at the
# moment of each check-out: now() would be the statement's start, before
# the last check-ins).
CHECK_OUT = """
SELECT count(*) FILTER (WHERE (c).out_status = 201), count(*)
FROM (SELECT gridsvc_check(u.id, NULL, NULL, v.on_duty_shift_id, 'check_out', p.lon, p.lat, p.lon, p.lat, 'wgs84',
                           15, 15, 'bench-out-' || u.id || '-' || :round, NULL, clock_timestamp(), false, clock_timestamp(),
                           interval '30 minutes', interval '2 hours', '{}'::jsonb, '{}'::jsonb, u.id) AS c
      FROM volunteer v JOIN app_user u ON u.id = v.user_id
      JOIN shift s ON s.id = v.on_duty_shift_id JOIN zone z ON z.id = s.zone_id,
      LATERAL (SELECT ST_X(ST_PointOnSurface(z.geom)) AS lon, ST_Y(ST_PointOnSurface(z.geom)) AS lat) p
      WHERE u.id = ANY(:user_ids)) checked_out"""

LUA = r"""
local requests = {}
local counter = 0
local threads = {}

function setup(thread)
  thread:set("offset", counter)
  table.insert(threads, thread)
  counter = counter + 1
end

function init(args)
  local f = io.open(os.getenv("BENCH_REQUESTS"), "r")
  local step = tonumber(os.getenv("BENCH_THREADS"))
  local i = 0
  for line in f:lines() do
    if i % step == offset then
      local path, token, key, body = line:match("([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)")
      local headers = {}
      headers["Authorization"] = "Bearer " .. token
      headers["Content-Type"] = "application/json"
      headers["Idempotency-Key"] = key
      table.insert(requests, wrk.format("POST", path, headers, body))
    end
    i = i + 1
  end
  f:close()
  index = 0
end

function request()
  index = index + 1
  if index > #requests then
    -- every volunteer of this thread's share has checked in: stop rather than
    -- time replays of stored answers (wrk still divides by the whole duration,
    -- so the round's rate is then a lower bound, and flagged)
    ran_out = true
    wrk.thread:stop()
    index = 1
  end
  return requests[index]
end

function done(summary, latency, requests)
  local n = 0
  for _, thread in ipairs(threads) do
    if thread:get("ran_out") then n = n + 1 end
  end
  io.write(string.format("threads that ran out: %d\n", n))
end
"""


def _populate(engine, volunteers: int, shifts: int, now: datetime) -> list[dict]:
    """Bulk-create accounts, volunteer profiles, open shifts and one confirmed sign-up each.

    Each profile is written as its volunteer registering (POST
    /api/v1/volunteers) writes it, with the volunteer as its creator and last
    editor; otherwise the first check-in would also check the editor's
    foreign key, which only a profile last edited by someone else costs."""
    shared_hash = hash_password("bench-password")
    with engine.begin() as conn:
        zones = conn.execute(text("SELECT id, ST_X(ST_PointOnSurface(geom)), ST_Y(ST_PointOnSurface(geom)), community_id "
                                  "FROM zone ORDER BY id")).all()
        conn.execute(text("""
            INSERT INTO app_user (username, display_name, password_hash)
            SELECT 'bench-' || lpad(g::text, 6, '0'), 'Bench volunteer ' || g, :hash FROM generate_series(1, :n) g"""),
            {"hash": shared_hash, "n": volunteers})
        conn.execute(text("""
            INSERT INTO user_role (user_id, role) SELECT id, 'volunteer' FROM app_user WHERE username LIKE 'bench-%'"""))
        conn.execute(text("""
            INSERT INTO volunteer (user_id, real_name, phone, team, home_zone_id, created_by_id, updated_by_id)
            SELECT u.id, u.display_name, '13800000000', '灵动', z.ids[1 + (u.id % array_length(z.ids, 1))], u.id, u.id
            FROM app_user u, (SELECT array_agg(id ORDER BY id) AS ids FROM zone) z
            WHERE u.username LIKE 'bench-%'"""))
        starts, ends = now - timedelta(minutes=10), now + timedelta(hours=4)
        for i in range(shifts):
            zone_id, _, _, community_id = zones[i % len(zones)]
            conn.execute(text("""
                INSERT INTO shift (community_id, zone_id, title, activity, starts_at, ends_at, capacity)
                VALUES (:c, :z, :t, 'traffic_guidance', :s, :e, :cap)"""),
                {"c": community_id, "z": zone_id, "t": f"Bench shift {i}", "s": starts, "e": ends,
                 "cap": -(-volunteers // shifts)})
        conn.execute(text("""
            INSERT INTO signup (shift_id, volunteer_id, status)
            SELECT s.ids[1 + ((row_number() OVER (ORDER BY v.id) - 1) % array_length(s.ids, 1))], v.id, 'confirmed'
            FROM volunteer v JOIN app_user u ON u.id = v.user_id,
                 (SELECT array_agg(id ORDER BY id) AS ids FROM shift WHERE title LIKE 'Bench shift %') s
            WHERE u.username LIKE 'bench-%'"""))
        rows = conn.execute(text("""
            SELECT u.id, sg.shift_id, ST_X(ST_PointOnSurface(z.geom)), ST_Y(ST_PointOnSurface(z.geom))
            FROM signup sg JOIN volunteer v ON v.id = sg.volunteer_id JOIN app_user u ON u.id = v.user_id
            JOIN shift s ON s.id = sg.shift_id JOIN zone z ON z.id = s.zone_id
            WHERE u.username LIKE 'bench-%' ORDER BY u.id""")).all()
    settle_tables(engine, "app_user", "user_role", "volunteer", "shift", "signup")
    return [{"user_id": uid, "shift_id": sid, "lon": lon, "lat": lat} for uid, sid, lon, lat in rows]


def _requests_file(token_app, people: list[dict], rng: random.Random, round_number: int = 0,
                   kind: str = "in") -> Path:
    """wrk's requests: each of ``people`` checking in (``kind`` "in") or out, with their own token and key."""
    path = Path(tempfile.mkstemp(prefix="bench-checkin-", suffix=".tsv")[1])
    with token_app.app_context(), path.open("w") as out:
        for person in people:
            token = create_access_token(identity=str(person["user_id"]), additional_claims={"tv": 0},
                                        expires_delta=timedelta(hours=2))
            # a few metres of GPS scatter, sent in GCJ-02 like AMap/WeChat do
            lon, lat = from_wgs84(person["lon"] + rng.uniform(-2e-5, 2e-5), person["lat"] + rng.uniform(-2e-5, 2e-5), "gcj02")
            body = json.dumps({"lon": lon, "lat": lat, "crs": "gcj02", "accuracy_m": 15})
            key = f"bench-{person['user_id']}-{round_number}" + ("" if kind == "in" else "-out")  # a new stint each round
            out.write(f"/api/v1/shifts/{person['shift_id']}/check-{kind}\t{token}\t{key}\t{body}\n")
    return path


def _on_duty(engine, people: list[dict]) -> list[dict]:
    """Those of ``people`` on duty now (checked in by the round), to check out."""
    time.sleep(0.5)  # the requests still in flight when wrk stopped are answered meanwhile
    with engine.connect() as conn:
        on_duty = set(conn.scalars(text("SELECT v.user_id FROM volunteer v WHERE v.user_id = ANY(:ids) "
                                        "AND v.on_duty_shift_id IS NOT NULL"),
                                   {"ids": [p["user_id"] for p in people]}))
    return [p for p in people if p["user_id"] in on_duty]


def _check_out(engine, people: list[dict], round_number: int) -> None:
    """The group of a round back off duty (untimed: those its timed check-outs did not reach), ready for its
    next turn."""
    time.sleep(0.5)  # the check-outs still in flight when wrk stopped are answered meanwhile
    with engine.begin() as conn:
        done, tried = conn.execute(text(CHECK_OUT), {"user_ids": [p["user_id"] for p in people],
                                                     "round": round_number}).one()
    if done != tried:
        raise SystemExit(f"round {round_number}: {tried - done} of {tried} check-outs were refused")


def _wrk(base: str, path: str, seconds: int, connections: int, threads: int, script: Path | None = None,
         env: dict | None = None) -> dict:
    result = run_wrk(base + path, seconds=seconds, connections=connections, threads=threads, script=script, env=env)
    # the script says whether a thread checked in all its volunteers before the time was up
    result["ran_out"] = bool(re.search(r"threads that ran out: [1-9]", result["output"]))
    return result


def _metered(meter: CpuMeter, run) -> dict:
    """A wrk run with the CPU its requests cost (``cpu_us``: server, database, machine per request)."""
    before = meter.sample()
    result = run()
    result["cpu_us"] = CpuMeter.per_request_us(before, meter.sample(), result["total"])
    return result


def _us(value: float | None) -> str:
    """CPU µs as printed: "-" for a database on another machine."""
    return "-" if value is None else f"{value:.0f}"


def _cpu_columns(result: dict) -> tuple[str, ...]:
    """Server, database and whole machine, and how busy the machine's cores were."""
    return (*(_us(result["cpu_us"][key]) for key in ("server", "database", "machine")), f"{_busy(result):.0%}")


def _busy(result: dict) -> float:
    """The share of the cores' time spent: CPU per request x requests per second. Below the
    trivial endpoint's, the server waited (on the database's answer) rather than computed."""
    return result["cpu_us"]["machine"] * result["rate"] / 1e6 / os.cpu_count()


def _median_cpu(results: list[dict], key: str) -> float | None:
    values = [r["cpu_us"][key] for r in results if r["cpu_us"][key] is not None]
    return statistics.median(values) if values else None


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench checkin", description=__doc__.split("\n\n")[0])
    parser.add_argument("--volunteers", type=int, default=10_000)
    parser.add_argument("--shifts", type=int, default=1_000)
    parser.add_argument("--seconds", type=int, default=1,
                        help="per endpoint and round; with the defaults a round's 3,000 volunteers last 1 s at up to "
                             "3,000 check-ins/s (a round that runs out is flagged: give fewer --groups or --seconds)")
    parser.add_argument("--rounds", type=int, default=9,
                        help="the two endpoints are timed in turns, so the machine's drift hits both alike")
    parser.add_argument("--groups", type=int, default=3,
                        help="groups of volunteers taking the rounds in turns (each checks out after its round)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default: as gridsvc serve)")
    parser.add_argument("--threads", type=int, default=1,
                        help="threads per worker, as gridsvc serve --threads: above 1, gthread workers (keep-alive; a "
                             "thread computes while another waits for the database)")
    parser.add_argument("--split-cores", action="store_true",
                        help="PostgreSQL (on this machine) on the last core, gunicorn and wrk on the others: "
                             "a deployment whose database has a machine of its own, on one box")
    args = parser.parse_args(argv)
    groups = max(1, min(args.groups, args.rounds))
    if args.volunteers < WARM_UP_VOLUNTEERS + 100 * groups:
        parser.error(f"--volunteers: at least {WARM_UP_VOLUNTEERS + 100 * groups:,} "
                     f"({WARM_UP_VOLUNTEERS:,} warm the server up, the rest are shared by the groups)")
    if not shutil.which("wrk"):
        raise SystemExit("bench checkin needs wrk: apt-get install wrk")
    lingering = time_wait_sockets()
    if lingering > 10_000:
        print(f"note: {lingering:,} TCP sockets in TIME_WAIT (a run a minute ago leaves them): the rates drift "
              f"while they last; for steadier figures wait a minute first")

    url = bench_database_url()
    engine = create_engine(url)
    with Session(engine) as session:
        load_lingfeng(session)
        session.commit()
    started = time.perf_counter()
    people = _populate(engine, args.volunteers, args.shifts, datetime.now(timezone.utc))
    print(f"created {len(people):,} volunteers with a confirmed sign-up in {args.shifts:,} open shifts "
          f"in {time.perf_counter() - started:.1f} s")
    rng = random.Random(4)
    rng.shuffle(people)
    # each round checks in a group of its own, off duty (see the module docstring), and the warm-up
    # volunteers of their own: a worker's first check-ins connect, prepare the statement and fill the caches
    warm_up, people = people[:WARM_UP_VOLUNTEERS], people[WARM_UP_VOLUNTEERS:]
    share = -(-len(people) // groups)
    group_of = [people[g * share:(g + 1) * share] for g in range(groups)]
    token_app = create_app({"DATABASE_URL": url, "GRIDSVC_SECRET_KEY": SECRET})  # mints the volunteers' tokens
    token_app.extensions["gridsvc.db"].dispose()  # it never connects
    requests_files = [_requests_file(token_app, group_of[i % groups], rng, i + 1) for i in range(args.rounds)]
    warm_up_file = _requests_file(token_app, warm_up, rng)
    check_out_files: list[Path] = []  # made after each check-in round, for those it checked in
    script = Path(tempfile.mkstemp(prefix="bench-checkin-", suffix=".lua")[1])
    script.write_text(LUA)
    threads = 2
    lives, checkins, checkouts = [], [], []
    cores = f"on {os.cpu_count()} cores"
    try:
        os.environ["GRIDSVC_SECRET_KEY"] = SECRET
        with contextlib.ExitStack() as stack:
            if args.split_cores:
                ours, database = stack.enter_context(database_on_own_core())
                cores = f"on {len(ours)} core(s), PostgreSQL on {len(database)} of its own"
            base = stack.enter_context(served(url, workers=args.workers, worker_class="gthread" if args.threads > 1 else "sync",
                                                   threads=args.threads))
            meter = CpuMeter(urlsplit(base).port, make_url(url).database)
            # warm-up, both endpoints alike
            _wrk(base, "/api/v1/health/live", 1, args.connections, threads)
            _wrk(base, "/", 1, args.connections, threads, script,
                 {"BENCH_REQUESTS": str(warm_up_file), "BENCH_THREADS": str(threads)})
            check_out_files.append(_requests_file(token_app, _on_duty(engine, warm_up), rng, kind="out"))
            _wrk(base, "/", 1, args.connections, threads, script,
                 {"BENCH_REQUESTS": str(check_out_files[-1]), "BENCH_THREADS": str(threads)})
            # The statistics of a park that has been running: the tables of events and hours were empty when
            # loaded, and a connection's plans made from those statistics would be kept (scans of every event)
            # until autovacuum analysed them again, a minute or more later, past the end of the run.
            settle_tables(engine, "check_event", "service_hours", "volunteer")
            for round_number, requests_file in enumerate(requests_files, 1):
                group = group_of[(round_number - 1) % groups]
                lives.append(_metered(meter, lambda: _wrk(base, "/api/v1/health/live", args.seconds, args.connections,
                                                          threads)))
                checkins.append(_metered(meter, lambda: _wrk(base, "/", args.seconds, args.connections, threads, script,
                                                             {"BENCH_REQUESTS": str(requests_file),
                                                              "BENCH_THREADS": str(threads)})))
                check_out_files.append(_requests_file(token_app, _on_duty(engine, group), rng, round_number, kind="out"))
                checkouts.append(_metered(meter, lambda: _wrk(base, "/", args.seconds, args.connections, threads, script,
                                                              {"BENCH_REQUESTS": str(check_out_files[-1]),
                                                               "BENCH_THREADS": str(threads)})))
                _check_out(engine, group, round_number)
        with engine.connect() as conn:
            # over HTTP (the untimed check-outs' keys start "bench-out-")
            recorded = dict(conn.execute(text(
                "SELECT kind || CASE WHEN accepted THEN ' accepted' ELSE ' refused' END, count(*) FROM check_event "
                "WHERE idempotency_key LIKE 'bench-%' AND idempotency_key NOT LIKE 'bench-out-%' GROUP BY 1")).all())
    finally:
        for requests_file in (*requests_files, warm_up_file, *check_out_files):
            requests_file.unlink(missing_ok=True)
        script.unlink(missing_ok=True)
        engine.dispose()
    rows = []
    for round_number, (live, checkin, checkout) in enumerate(zip(lives, checkins, checkouts), 1):
        rows.append((f"{round_number}: GET /api/v1/health/live (trivial)", f"{live['rate']:.0f}", f"{live['p50_ms']:.1f}",
                     f"{live['p99_ms']:.1f}", live["non2xx"], "1.00", *_cpu_columns(live)))
        # a round whose volunteers all checked in (or out) before its time was up: wrk's rate is a lower bound
        for kind, result in (("in", checkin), ("out", checkout)):
            rows.append((f"{round_number}: POST /api/v1/shifts/{{id}}/check-{kind}",
                         (">=" if result["ran_out"] else "") + f"{result['rate']:.0f}",
                         f"{result['p50_ms']:.1f}", f"{result['p99_ms']:.1f}", result["non2xx"],
                         f"{result['rate'] / live['rate']:.2f}", *_cpu_columns(result)))
    print()
    server = f"{args.workers} gthread workers x {args.threads} threads" if args.threads > 1 else f"{args.workers} sync workers"
    print(f"gunicorn {server}, wrk {threads} threads x {args.connections} connections, "
          f"{args.seconds} s per endpoint in each of {args.rounds} rounds, {cores}")
    print_table(["round: endpoint", "req/s", "p50 ms", "p99 ms", "non-2xx", "ratio vs trivial",
                 "CPU µs/req: server", "database", "machine", "cores busy"], rows)
    print(f"\nmedian: trivial {statistics.median(r['rate'] for r in lives):.0f}/s, "
          f"check-in {statistics.median(r['rate'] for r in checkins):.0f}/s, "
          f"ratio {statistics.median(c['rate'] / t['rate'] for c, t in zip(checkins, lives)):.2f} "
          f"(goal: 800/s and 0.40); check-out {statistics.median(r['rate'] for r in checkouts):.0f}/s, "
          f"ratio {statistics.median(c['rate'] / t['rate'] for c, t in zip(checkouts, lives)):.2f}")
    trivial_cpu, checkin_cpu = _median_cpu(lives, "machine"), _median_cpu(checkins, "machine")
    print(f"CPU per request, whole machine (median): trivial {_us(trivial_cpu)} µs, check-in {_us(checkin_cpu)} µs "
          f"(server {_us(_median_cpu(checkins, 'server'))}, database {_us(_median_cpu(checkins, 'database'))}): "
          f"a check-in costs {checkin_cpu / trivial_cpu:.2f} trivial requests (0.40 needs at most 2.50); "
          f"cores busy: trivial {statistics.median(_busy(r) for r in lives):.0%}, "
          f"check-in {statistics.median(_busy(r) for r in checkins):.0%}; "
          f"a check-out costs {_median_cpu(checkouts, 'machine') / trivial_cpu:.2f} (server "
          f"{_us(_median_cpu(checkouts, 'server'))} µs, database {_us(_median_cpu(checkouts, 'database'))} µs)")
    if any(c["ran_out"] for c in checkins):
        print(f"a round ran out of volunteers before its {args.seconds} s were up (>=): its rate is a lower bound; "
              f"give fewer --groups or --seconds")
    if any(c["ran_out"] for c in checkouts):
        print("a round's check-outs ended before its time was up (>=: everyone who checked in had checked out): "
              "its rate is a lower bound")
    print("recorded over HTTP, the warm-up's included: " + ", ".join(
        f"{recorded.get(f'{kind} {outcome}', 0):,} {kind.replace('_', '-')}s {outcome}"
        for kind in ("check_in", "check_out") for outcome in ("accepted", "refused"))
        + f" (requests sent in the rounds: {sum(r['total'] for r in checkins):,} check-ins, "
          f"{sum(r['total'] for r in checkouts):,} check-outs; a repeat of a volunteer's request replays the stored answer)")
    return 0
