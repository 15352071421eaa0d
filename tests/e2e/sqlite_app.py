"""A stand-in app that keeps writing to a SQLite database, for the sqlite kind's tests.

Usage: sqlite_app.py DB STARTED STOP

Until the file STOP exists it commits, as fast as it can, one order at a time: a row
in `orders` (its total), three rows in `lines` whose amounts add up to that total,
and the count of orders in `counter`, all in one transaction. Any consistent copy
therefore has: no gap in the order ids, every order's lines adding up, and the
counter equal to the number of orders. It touches STARTED after its first commit,
and prints how many it made when it stops. Orders are only ever appended.
"""

import sqlite3
import sys
from pathlib import Path

db, started, stop = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
conn = sqlite3.connect(db, timeout=60, isolation_level=None)
made = 0
while not stop.exists():
    conn.execute("BEGIN IMMEDIATE")
    (order_id,) = conn.execute(
        "INSERT INTO orders (total, note) VALUES (?, ?) RETURNING id",
        (600 + made % 7, "written while backed up " * 4),
    ).fetchone()
    for amount in (100, 200, 300 + made % 7):
        conn.execute("INSERT INTO lines (order_id, amount) VALUES (?, ?)", (order_id, amount))
    conn.execute("UPDATE counter SET orders = orders + 1")
    conn.execute("COMMIT")
    made += 1
    if made == 1:
        started.touch()
print(made)
