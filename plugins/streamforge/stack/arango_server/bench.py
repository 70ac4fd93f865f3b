"""Throughput check of the ArangoDB test server through python-arango.

    python -m streamforge.stack.arango_server.bench [--docs 100000] [--batch 1000] [--subprocess] [--url URL]

Starts a server (in a background thread, or with ``--subprocess`` as a separate process via
the CLI; or uses ``--url``/``--user``/``--password`` for any ArangoDB), then measures batch
inserts, bulk import, the window-summary query and a full cursor read. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import time
import uuid
from typing import Any

from arango import ArangoClient

from .server import ArangoTestServer

WINDOW_SUMMARY = """
FOR d IN @@collection
  FILTER d.@time_field >= @start AND d.@time_field < @end
  COLLECT AGGREGATE n = COUNT(1), lo = MIN(d.@id_field), hi = MAX(d.@id_field)
  RETURN {count: n, first: lo, last: hi}
""".strip()


def _docs(n: int, offset: int = 0) -> list[dict[str, Any]]:
    return [
        {
            "_key": f"BTCUSDT:{offset + i}",
            "symbol": "BTCUSDT",
            "trade_id": offset + i,
            "price": "42000.10",
            "qty": "0.001",
            "trade_time": 1_700_000_000_000 + offset + i,
            "is_buyer_maker": bool(i & 1),
        }
        for i in range(n)
    ]


def _proc_cpu(pid: int | None) -> float:
    """CPU seconds (user+system) of a process, from /proc (Linux); 0.0 when unavailable."""
    if pid is None:
        return 0.0
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def run(url: str, user: str, password: str, n_docs: int, batch: int, server_pid: int | None = None) -> dict[str, Any]:
    client = ArangoClient(hosts=url)
    sys_db = client.db("_system", user, password, verify=True)
    name = f"sf_bench_{uuid.uuid4().hex[:8]}"
    sys_db.create_database(name)
    out: dict[str, Any] = {"docs": n_docs, "batch": batch}
    try:
        db = client.db(name, user, password, verify=True)
        coll = db.create_collection("trades")
        coll.add_index({"type": "persistent", "fields": ["trade_time"], "unique": False, "sparse": False})
        docs = _docs(n_docs)
        batches = [docs[i : i + batch] for i in range(0, n_docs, batch)]

        t = time.perf_counter()
        client_cpu = time.process_time()
        server_cpu = _proc_cpu(server_pid)
        for chunk in batches:
            coll.insert_many(chunk, overwrite_mode="replace")
        elapsed = time.perf_counter() - t
        out["insert_many_replace_s"] = round(elapsed, 3)
        out["insert_many_docs_per_s"] = round(n_docs / elapsed)
        out["insert_many_client_cpu_s"] = round(time.process_time() - client_cpu, 3)
        if server_pid is not None:
            out["insert_many_server_cpu_s"] = round(_proc_cpu(server_pid) - server_cpu, 3)

        t = time.perf_counter()
        for chunk in batches:
            coll.insert_many(chunk, overwrite_mode="replace", silent=True)
        elapsed = time.perf_counter() - t
        out["insert_many_replace_existing_silent_docs_per_s"] = round(n_docs / elapsed)

        coll2 = db.create_collection("imported")
        t = time.perf_counter()
        for chunk in batches:
            coll2.import_bulk(chunk, on_duplicate="replace", halt_on_error=False)
        elapsed = time.perf_counter() - t
        out["import_bulk_docs_per_s"] = round(n_docs / elapsed)

        bind = {"@collection": "trades", "time_field": "trade_time", "id_field": "trade_id",
                "start": 1_700_000_000_000, "end": 1_700_000_000_000 + n_docs}  # fmt: skip
        t = time.perf_counter()
        (row,) = list(db.aql.execute(WINDOW_SUMMARY, bind_vars=bind))
        out["window_summary_s"] = round(time.perf_counter() - t, 3)
        assert row == {"count": n_docs, "first": 0, "last": n_docs - 1}, row

        t = time.perf_counter()
        count = sum(1 for _ in db.aql.execute("FOR d IN @@c RETURN d", bind_vars={"@c": "trades"}, batch_size=1000))
        out["cursor_read_docs_per_s"] = round(count / (time.perf_counter() - t))
        assert count == n_docs
    finally:
        sys_db.delete_database(name, ignore_missing=True)
        client.close()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m streamforge.stack.arango_server.bench", description=__doc__)
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--subprocess", action="store_true", help="run the server as a separate process")
    parser.add_argument("--url", help="benchmark this ArangoDB instead of starting the test server")
    parser.add_argument("--user", default="root")
    parser.add_argument("--password", default="")
    args = parser.parse_args(argv)

    result: dict[str, Any] = {}
    password = secrets.token_urlsafe(16)  # a throw-away server's root password
    if args.url:
        result.update(run(args.url, args.user, args.password, args.docs, args.batch))
    elif args.subprocess:
        t = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamforge.stack.arango_server", "--port", "0", "--root-password", password],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stdout is not None
            info = json.loads(proc.stdout.readline())
            result["server_start_s"] = round(time.perf_counter() - t, 3)
            result["mode"] = "subprocess"
            result.update(run(info["url"], "root", password, args.docs, args.batch, server_pid=proc.pid))
        finally:
            proc.terminate()
            proc.wait(10)
    else:
        t = time.perf_counter()
        server = ArangoTestServer(root_password=password).start()
        result["server_start_s"] = round(time.perf_counter() - t, 3)
        result["mode"] = "thread"
        try:
            result.update(run(server.url, "root", password, args.docs, args.batch))
        finally:
            t = time.perf_counter()
            server.stop()
            result["server_stop_s"] = round(time.perf_counter() - t, 3)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
