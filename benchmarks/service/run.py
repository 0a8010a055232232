"""Sustained ingest benchmark of the monitoring service on loopback.

    .venv/bin/python benchmarks/service/run.py            # writes benchmarks/results/service.md and .json

Starts ``poisonguard serve`` (uvicorn, one process) on a fresh SQLite file (WAL, synchronous=FULL: every
acknowledged batch is fsynced), registers a reference built from UCI Adult (80% of adult.data, with the
predictions of a logistic regression), then runs, for each batch size, N concurrent clients (threads with
keep-alive connections) that post batches of the other 20% of the rows with predictions and unique batch ids for a
fixed duration. Reports throughput (rows/s, batches/s), p50/p99 latency of acknowledged batches and the server's
peak RSS (VmHWM from /proc). The first ``--warmup`` seconds of each run are not counted.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE.parent))
import datasets  # noqa: E402

from poisonguard import __version__  # noqa: E402
from poisonguard.monitor import Profile  # noqa: E402

TOKEN = "bench-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int, field: str = "VmHWM") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def data() -> tuple[Any, Any, Any, str]:
    """(reference frame, reference predictions, traffic frame with predictions, description)."""
    from sklearn.linear_model import LogisticRegression

    if not datasets.available():
        raise SystemExit(f"no datasets at {datasets.SHARED}; pass --datasets DIR (this benchmark uses UCI Adult).")
    df = datasets.adult()
    rng = np.random.default_rng(0)
    order = rng.permutation(len(df))
    cut = int(0.8 * len(df))
    ref, traffic = df.iloc[order[:cut]].reset_index(drop=True), df.iloc[order[cut:]].reset_index(drop=True)
    num = ["age", "education_num", "capital_gain", "capital_loss", "hours_per_week"]
    model = LogisticRegression(max_iter=500).fit(ref[num], ref["label"])
    ref_pred, traffic_pred = model.predict(ref[num]), model.predict(traffic[num])
    traffic = traffic.drop(columns="label").assign(_prediction=traffic_pred)
    return (
        ref,
        ref_pred,
        traffic,
        f"UCI Adult: reference {len(ref):,} rows x 14 features, traffic from {len(traffic):,} held-out rows",
    )


def bodies(traffic: Any, size: int, n: int, seed: int) -> list[bytes]:
    """``n`` JSON batch bodies of ``size`` rows with a ``__BATCH_ID__`` placeholder."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        part = traffic.iloc[rng.choice(len(traffic), size, replace=False)]
        rows = json.loads(part.drop(columns="_prediction").to_json(orient="records"))
        body = {"batch_id": "__BATCH_ID__", "rows": rows, "predictions": part["_prediction"].tolist()}
        out.append(json.dumps(body).encode())
    return out


def load(port: int, size: int, templates: list[bytes], clients: int, duration: float, warmup: float) -> dict[str, Any]:
    """Clients post batches for ``warmup + duration`` seconds; statistics over the last ``duration`` seconds."""
    start = time.monotonic()
    t_count, t_end = start + warmup, start + warmup + duration
    lat: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients

    def client(k: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"}
        i = 0
        while True:
            now = time.monotonic()
            if now >= t_end:
                break
            body = templates[(k * 7919 + i) % len(templates)].replace(b"__BATCH_ID__", f"s{size}-c{k}-{i}".encode())
            t0 = time.monotonic()
            try:
                conn.request("POST", "/v1/models/adult/batches", body=body, headers=headers)
                resp = conn.getresponse()
                resp.read()
                ok = resp.status == 201
            except (OSError, http.client.HTTPException):
                ok = False
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            t1 = time.monotonic()
            if t0 >= t_count and t1 <= t_end:
                if ok:
                    lat[k].append(t1 - t0)
                else:
                    errors[k] += 1
            i += 1
        conn.close()

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    all_lat = np.sort(np.concatenate([np.asarray(x) for x in lat]))
    n = len(all_lat)
    return {
        "batch_rows": size,
        "clients": clients,
        "seconds": duration,
        "batches": n,
        "errors": int(sum(errors)),
        "batches_per_s": n / duration,
        "rows_per_s": n * size / duration,
        "p50_ms": float(np.quantile(all_lat, 0.5) * 1000) if n else None,
        "p99_ms": float(np.quantile(all_lat, 0.99) * 1000) if n else None,
        "max_ms": float(all_lat[-1] * 1000) if n else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100,1000", help="batch sizes in rows, comma separated")
    ap.add_argument("--clients", type=int, default=4, help="concurrent clients")
    ap.add_argument("--duration", type=float, default=30.0, help="measured seconds per batch size")
    ap.add_argument("--warmup", type=float, default=3.0, help="seconds not counted at the start of each run")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "service")
    ap.add_argument(
        "--datasets", type=Path, default=None, help="the shared datasets folder (default ../shared/datasets)"
    )
    args = ap.parse_args()
    if args.datasets is not None:
        datasets.SHARED = args.datasets.resolve()

    load_before = [round(x, 2) for x in os.getloadavg()]
    ref, ref_pred, traffic, described = data()
    profile = Profile.from_frame(ref, label="label", predictions=ref_pred, seed=0)
    tmp = Path(tempfile.mkdtemp(prefix="pg-bench-"))
    db = tmp / "bench.db"
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    log = (tmp / "server.log").open("wb")
    cmd = [sys.executable, "-m", "poisonguard.cli", "serve", "--db", f"sqlite:///{db}", "--port", str(port)]
    server = subprocess.Popen([*cmd, "--token", TOKEN], stdout=log, stderr=subprocess.STDOUT, env=env)
    results: list[dict[str, Any]] = []
    try:
        for _ in range(300):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                    break
            except OSError:
                time.sleep(0.1)
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/models/adult/reference",
            data=json.dumps(profile.to_dict()).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"},
            method="POST",
        )
        with urllib.request.urlopen(req, timeout=60) as r:
            assert r.status in (200, 201)
        idle_rss = rss_mb(server.pid, "VmRSS")
        for size in [int(s) for s in args.sizes.split(",")]:
            templates = bodies(traffic, size, 40, seed=size)
            res = load(port, size, templates, args.clients, args.duration, args.warmup)
            res["server_rss_mb"] = rss_mb(server.pid, "VmRSS")
            res["server_peak_rss_mb"] = rss_mb(server.pid, "VmHWM")
            res["body_kb"] = round(float(np.mean([len(b) for b in templates])) / 1024, 1)
            results.append(res)
            print(json.dumps(res), flush=True)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models/adult", timeout=10) as r:
            stored = json.loads(r.read())
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
    db_mb = sum(p.stat().st_size for p in tmp.glob("bench.db*")) / 2**20
    machine = {
        "cpus": os.cpu_count(),
        "cpu": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "poisonguard": __version__,
        "date": time.strftime("%Y-%m-%d"),
        "load_average_before": load_before,
    }
    out = {
        "command": "python benchmarks/service/run.py " + " ".join(sys.argv[1:]),
        "data": described,
        "machine": machine,
        "idle_rss_mb": idle_rss,
        "stored_batches": stored["batches"],
        "stored_rows": stored["rows"],
        "db_mb": db_mb,
        "runs": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(out, indent=2))
    lines = [
        "# Service ingest benchmark",
        "",
        f"Command: `.venv/bin/python benchmarks/service/run.py {' '.join(sys.argv[1:])}`".replace(" `", " `"),
        "",
        f"Machine: {machine['cpus']} cores shared by the server and the load generator ({machine['cpu']}), Python "
        f"{machine['python']}, SQLite {machine['sqlite']}, poisonguard {machine['poisonguard']}. Date: {machine['date']}. "
        f"Load average before the run (other work on the machine): {', '.join(map(str, load_before))}.",
        "",
        f"Setup: one `poisonguard serve` process (uvicorn) on loopback, SQLite file in WAL mode with synchronous=FULL "
        f"(each acknowledged batch is committed and fsynced before the answer); {args.clients} concurrent clients with "
        f"keep-alive connections; {args.duration:.0f} s measured per batch size after {args.warmup:.0f} s of warm-up. "
        f"Data: {described}; each batch carries the model's predictions and is checked for drift (per-feature PSI, "
        "KS or chi-square, prediction drift) before it is stored.",
        "",
        "| batch rows | body (KB) | batches/s | rows/s | p50 latency (ms) | p99 latency (ms) | errors | server RSS after (MB) | server peak RSS (MB) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['batch_rows']:,} | {r['body_kb']} | {r['batches_per_s']:.1f} | {r['rows_per_s']:,.0f} | "
            f"{r['p50_ms']:.0f} | {r['p99_ms']:.0f} | {r['errors']} | {r['server_rss_mb']:.0f} | {r['server_peak_rss_mb']:.0f} |"
        )
    lines += [
        "",
        f"Server RSS when idle with the reference loaded: {idle_rss:.0f} MB. Stored at the end: "
        f"{stored['batches']:,} batches, {stored['rows']:,} rows; database {db_mb:.1f} MB (reports and predictions "
        "are stored, the raw rows are not).",
        "",
    ]
    args.out.with_suffix(".md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
