"""A check event is judged on the figures its answer shows, and a key names one position.

- **Judged as shown.** The geofence was judged on the exact distance and
  allowance, and the answer gave both rounded to a tenth of a metre: a phone
  20.04 m outside with 20 m accuracy was refused with ``distance_m: 20.0``
  and ``allowed_m: 20.0``, a refusal that by its own fields was within the
  allowance (only the ``detail`` rounded outward). The distance is now
  rounded first and judged against the allowance as sent in the answer
  (rounded by the caller), so a refusal's ``distance_m`` always exceeds its
  ``allowed_m``, an acceptance's never does, and the ``detail`` gives the
  same two figures.
- **A key names one position.** A check-in with a used Idempotency-Key
  replayed the first answer whatever the body: a volunteer refused 5 km away
  who walked into the zone and sent again with the same key was told again
  they were 5 km away, and nothing was recorded. As for every other write
  (README, "Retries"), the same key for another request is now a 422
  (``key_reused``): another shift, kind, position (as sent: lon, lat, crs)
  or accuracy. The time is not compared: a check-in sent online whose
  answer was lost may be queued and uploaded offline with its client time,
  and is the same event.

Revision ID: 0034
Revises: 0033
Create Date: 2026-12-01
"""

from alembic import op

from gridsvc.migrate import migration_beside, replaced_once as _replaced

revision = "0034"
down_revision = "0033"
branch_labels = None
depends_on = None


def _revision_0033():
    return migration_beside(__file__, "0033_offline_check_in_after_the_grace.py")


def check_function() -> str:
    check = _revision_0033().check_function()
    check = _replaced(check, """    previous record;
""", """    previous record;
    shown_distance numeric;  -- the distance to the geofence as the answer gives it, and as it is judged
""")
    check = _replaced(check, """    SELECT e.id, e.shift_id, e.kind, e.status_code, e.response INTO previous""",
                      """    SELECT e.id, e.shift_id, e.kind, e.input_lon, e.input_lat, e.input_crs, e.accuracy_m, e.status_code,
           e.response INTO previous""")
    check = _replaced(check, """        IF previous.shift_id <> p_shift_id OR previous.kind <> p_kind THEN""",
                      """        -- a retry is the same request (its client time aside: one sent online may be queued and sent again)
        IF previous.shift_id <> p_shift_id OR previous.kind <> p_kind OR previous.input_crs <> p_input_crs
           OR previous.input_lon <> p_input_lon OR previous.input_lat <> p_input_lat
           OR previous.accuracy_m IS DISTINCT FROM p_accuracy_m THEN""")
    check = _replaced(check, """    is_inside := shift_row.distance <= p_allowed_m;""",
                      """    shown_distance := round(shift_row.distance::numeric, 1);
    is_inside := shown_distance <= p_allowed_m;  -- (the allowance comes rounded as the answer gives it)""")
    check = _replaced(check, """                                            'distance_m', round(shift_row.distance::numeric, 1));""",
                      """                                            'distance_m', shown_distance);""")
    check = _replaced(check, """                       'move closer and check in again.', round(ceil(shift_row.distance::numeric * 10) / 10, 1),
                       round(floor(p_allowed_m::numeric * 10) / 10, 1))""",
                      """                       'move closer and check in again.', shown_distance, round(p_allowed_m::numeric, 1))""")
    check = _replaced(check, """p_accuracy_m, is_inside, round(shift_row.distance::numeric, 1),""",
                      """p_accuracy_m, is_inside, shown_distance,""")
    return check


def upgrade() -> None:
    op.execute(check_function())


def downgrade() -> None:
    op.execute(_revision_0033().check_function())
