#!/usr/bin/env python3
"""Connect to PostgreSQL with psycopg (the app's own driver and libpq) and report, as JSON, whether
it worked and how: pg_connect.py '<conninfo>'. The password comes from $PGPASSWORD (libpq reads
it); nothing secret is printed."""
import json
import sys

import psycopg


def main():
    conninfo = sys.argv[1]
    try:
        with psycopg.connect(conninfo, connect_timeout=10) as conn:
            row = conn.execute("SELECT current_user, ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()
            print(json.dumps({"ok": True, "user": row[0], "ssl": row[1], "tls": row[2],
                              "libpq": psycopg.pq.version()}))
    except psycopg.Error as exc:
        print(json.dumps({"ok": False, "error": str(exc).strip()}))


if __name__ == "__main__":
    main()
