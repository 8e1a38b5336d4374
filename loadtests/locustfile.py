"""Locust users for a served wedcache: wedding-planning traffic from the simulation's workload model.

Run it against ``wedcache serve`` (from the repository root)::

    locust -f loadtests/locustfile.py --host http://127.0.0.1:3000                 # web UI
    locust -f loadtests/locustfile.py --host http://127.0.0.1:3000 --headless -u 50 -r 10 -t 5m
    WEDCACHE_LOAD_SHAPE=seasonal locust -f loadtests/locustfile.py --host ... --headless
    locust -f loadtests/locustfile.py --master --host ...   /   locust -f loadtests/locustfile.py --worker
    (``wedcache gate run --distributed N`` starts a master and N workers itself)

**Traffic.** Each :class:`WeddingPlanner` (a ``FastHttpUser``) draws query ids by Zipf
popularity (numpy, its own seeded generator) from one :class:`~simulations.workload.Catalogue`
built per process from a :class:`~simulations.workload.WorkloadSpec` (``--distinct``,
``--seed``), so every process, and the SimPy model with the same spec and seed, sees the same
queries and camelCase wedding contexts. Task weights follow real traffic: ``POST query`` 90,
``GET statistics?timeRange=1h`` 5, ``GET seasonal-scaling`` 2, ``DELETE invalidate`` 1 (one
wedding, or one vendor type). Users wait ``--think-time MIN MAX`` seconds between requests,
or, with ``--target-rps R`` (``WEDCACHE_TARGET_RPS``) and ``-u N``, are each paced at ``R/N``
requests per second (Locust's ``constant_throughput``): a constant-throughput run, short of
``R`` only when the users cannot keep up (a worker paces by its own ``-u``: Locust does not
send it, so give workers the master's ``-u``). Requests are named by endpoint. Each query answer also fires
a ``CACHE`` request entry named by its ``X-Cache`` header (``HIT-memory``, ``HIT-redis``,
``HIT-postgres``, ``MISS``) with the request's response time, so Locust's tables and CSV show
latency per tier. A 4xx/5xx is a failure whose message carries the envelope's error code.

**Credentials.** ``WEDCACHE_API_KEY`` when set (every process reads it). Otherwise, when the
host is loopback (``localhost``, ``127.0.0.0/8``, ``::1``), the master or local runner
creates an ``enterprise`` key for a throwaway organization at ``test_start`` in the local
deployment's database: ``AI_CACHE_DATABASE_URL``, else the servers
:func:`wedcache.services.ensure_services` finds (the ones ``wedcache serve`` uses); a master
sends it to its workers. Otherwise the run stops with a message naming ``WEDCACHE_API_KEY``.

**Workers.** Every process builds the same catalogue (give workers the master's ``--distinct``
and ``--seed``: Locust sends custom arguments only when the load starts, after the catalogue
is built), but a worker's users draw from a stream of their own (:meth:`Traffic.user_rng`,
the worker's index + 1; stream 0 is a single process's and the gate's warm-up), so two
workers do not replay each other's queries. A master tallies what each worker reported
(:class:`WorkerTally`) and, with ``--csv PREFIX``, writes ``PREFIX_workers.csv`` (``Worker``,
``Request Count``, ``Failure Count``; counted like the ``Aggregated`` row) when it quits.
Before that, a master or local runner with ``--csv`` waits one CSV interval at quitting, so
Locust's CSV writer also writes the last reports.

**Shapes.** Locust uses a ``LoadTestShape`` only when one is defined in the locustfile's own
namespace, and it imports the locustfile before it parses the command line. So the shape is
chosen at import time, from ``--shape NAME`` in ``sys.argv`` or else ``WEDCACHE_LOAD_SHAPE``
(``seasonal``, ``peak-saturday``, ``step``; unset or ``none``: plain ``-u``/``-r``), and only
that class is bound here (:mod:`loadtests.shapes`). ``--shape`` is also a declared argument,
so Locust accepts it. The shapes' parameters are ordinary custom arguments (``--base-users``,
``--seconds-per-day``, ``--peak-day-seconds``, ``--step-*``).
"""
from __future__ import annotations

import ipaddress
import logging
import os
import sys
import csv
import uuid
from pathlib import Path
from typing import Any, Mapping, Sequence
from urllib.parse import urlsplit

import gevent
import numpy as np
from locust import FastHttpUser, constant_throughput, events, task
from locust import stats as locust_stats
from locust.exception import StopUser
from locust.runners import MasterRunner, WorkerRunner

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere: `loadtests`, `simulations`

from loadtests import shapes  # noqa: E402
from simulations.workload import Catalogue, WorkloadSpec  # noqa: E402

log = logging.getLogger("wedcache.locust")

API_KEY_ENV = "WEDCACHE_API_KEY"
SHAPE_ENV = "WEDCACHE_LOAD_SHAPE"
KEY_MESSAGE = "wedcache-api-key"
QUERY_PATH = "/api/ai-cache/query"
STATISTICS_PATH = "/api/ai-cache/statistics?timeRange=1h"
SCALING_PATH = "/api/ai-cache/seasonal-scaling"
INVALIDATE_PATH = "/api/ai-cache/invalidate"
CACHE_LABELS = ("HIT-memory", "HIT-redis", "HIT-postgres", "MISS")


# --- the shape, chosen at import ------------------------------------------------------------

def requested_shape(argv: Sequence[str], env: Mapping[str, str]) -> str | None:
    """``--shape NAME`` / ``--shape=NAME`` from ``argv``, else ``env[WEDCACHE_LOAD_SHAPE]``."""
    for index, arg in enumerate(argv):
        if arg == "--shape" and index + 1 < len(argv):
            return argv[index + 1]
        if arg.startswith("--shape="):
            return arg.split("=", 1)[1]
    return env.get(SHAPE_ENV) or None


_shape = shapes.shape_class(requested_shape(sys.argv, os.environ))
if _shape is not None:
    globals()[_shape.__name__] = _shape  # Locust picks a LoadTestShape from this module's namespace


@events.init_command_line_parser.add_listener
def add_arguments(parser: Any) -> None:
    d = shapes.DEFAULTS
    parser.add_argument("--shape", choices=("none", *shapes.SHAPES), default="none", env_var=SHAPE_ENV,
                        help="load shape (read at import: --shape or WEDCACHE_LOAD_SHAPE)")
    parser.add_argument("--base-users", type=int, default=d["base_users"], help="users at multiplier 1.0")
    parser.add_argument("--seconds-per-day", type=float, default=d["seconds_per_day"],
                        help="real seconds per simulated day (seasonal shape)")
    parser.add_argument("--days", type=int, default=d["days"], help="simulated days (seasonal shape)")
    parser.add_argument("--peak-day-seconds", type=float, default=d["peak_day_seconds"],
                        help="real seconds for the whole Saturday (peak-saturday shape)")
    parser.add_argument("--step-start", type=int, default=d["step_start"], help="users in the first step")
    parser.add_argument("--step-users", type=int, default=d["step_users"], help="users added per step")
    parser.add_argument("--step-seconds", type=float, default=d["step_seconds"], help="seconds per step")
    parser.add_argument("--steps", type=int, default=d["steps"], help="number of steps")
    parser.add_argument("--distinct", type=int, default=10_000, env_var="WEDCACHE_DISTINCT",
                        help="distinct queries in the catalogue")
    parser.add_argument("--seed", type=int, default=7, env_var="WEDCACHE_SEED", help="workload seed")
    parser.add_argument("--think-time", type=float, nargs=2, default=(0.5, 2.0), metavar=("MIN", "MAX"),
                        help="seconds a user waits between requests (uniform)")
    parser.add_argument("--target-rps", type=float, default=0.0, env_var="WEDCACHE_TARGET_RPS",
                        help="constant throughput for the whole run: each of the -u users is paced at "
                             "TARGET/-u requests/s (Locust's constant_throughput) instead of --think-time")


# --- traffic --------------------------------------------------------------------------------

class Traffic:
    """Request bodies drawn from the workload model's catalogue (one per process)."""

    def __init__(self, distinct: int = 10_000, seed: int = 7):
        self.catalogue = Catalogue(WorkloadSpec(distinct=distinct), np.random.default_rng(seed))
        self.seed = seed
        self._streams: dict[int, np.random.SeedSequence] = {}

    def user_rng(self, stream: int = 0) -> np.random.Generator:
        """A new generator for one user: the next child of ``stream``'s seed sequence, so runs
        repeat (stream 0: the seed's own; stream k: ``[seed, k]``, one per Locust worker)."""
        if stream not in self._streams:
            self._streams[stream] = np.random.SeedSequence(self.seed if stream == 0 else [self.seed, stream])
        return np.random.default_rng(self._streams[stream].spawn(1)[0])

    def pick(self, rng: np.random.Generator) -> int:
        return int(self.catalogue.sample(rng, 1)[0])

    def wedding_id(self, query_id: int) -> str:
        return f"wedding-{query_id:06d}"

    def query_body(self, rng: np.random.Generator) -> dict[str, Any]:
        query_id = self.pick(rng)
        context = {**self.catalogue.context(query_id), "weddingId": self.wedding_id(query_id)}
        return {"query": self.catalogue.query(query_id), "weddingContext": context}

    def invalidate_body(self, rng: np.random.Generator) -> dict[str, Any]:
        """A narrow selector: one wedding, or one vendor type of the organization."""
        query_id = self.pick(rng)
        if rng.random() < 0.5:
            return {"scope": "wedding", "weddingId": self.wedding_id(query_id)}
        return {"scope": "organization", "vendorTypes": [self.catalogue.vendor_type(query_id)]}


_traffic: Traffic | None = None


def traffic(options: Any = None) -> Traffic:
    """This process's :class:`Traffic`, built on first use from the run's options."""
    global _traffic
    if _traffic is None:
        _traffic = Traffic(getattr(options, "distinct", 10_000), getattr(options, "seed", 7))
    return _traffic


# --- credentials ----------------------------------------------------------------------------

class Credentials:
    """The run's API key secret (``None`` until known)."""

    secret: str | None = os.environ.get(API_KEY_ENV) or None


def is_loopback(host: str | None) -> bool:
    name = urlsplit(host or "").hostname
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name or "").is_loopback
    except ValueError:
        return False


def create_local_key(env: Mapping[str, str] = os.environ) -> str:
    """An ``enterprise`` key for a throwaway organization in the local deployment's database."""
    from wedcache.apikeys import ApiKeyStore
    from wedcache.services import DATABASE_ENV, ensure_services

    database_url = env.get(DATABASE_ENV) or ensure_services(env=env).database_url
    _, secret = ApiKeyStore(database_url).create(f"locust-{uuid.uuid4().hex[:12]}", "enterprise",
                                                 label="wedcache locust run")
    return secret


def resolve_api_key(host: str | None, env: Mapping[str, str] = os.environ) -> str:
    """``WEDCACHE_API_KEY``, else a new local key for a loopback host.

    :raises ValueError: naming ``WEDCACHE_API_KEY`` when neither applies."""
    if env.get(API_KEY_ENV):
        return env[API_KEY_ENV]
    if not is_loopback(host):
        raise ValueError(f"{API_KEY_ENV} is not set and the host {host!r} is not loopback: "
                         f"set {API_KEY_ENV} to a key of that deployment (wedcache keys create ...)")
    return create_local_key(env)


@events.init.add_listener
def on_init(environment: Any, **_: Any) -> None:
    traffic(environment.parsed_options)
    if isinstance(environment.runner, WorkerRunner):
        environment.runner.register_message(KEY_MESSAGE, receive_key)
    if isinstance(environment.runner, MasterRunner):
        environment.events.worker_report.add_listener(WorkerTally(environment.runner).add)


def receive_key(msg: Any, **_: Any) -> None:
    """A worker takes the master's key unless it has its own ``WEDCACHE_API_KEY``."""
    Credentials.secret = Credentials.secret or msg.data


@events.test_start.add_listener
def on_test_start(environment: Any, **_: Any) -> None:
    if isinstance(environment.runner, WorkerRunner):
        return
    if Credentials.secret is None:
        try:
            Credentials.secret = resolve_api_key(environment.host)
        except ValueError as error:
            log.error("%s", error)
            environment.process_exit_code = 1
            gevent.spawn(environment.runner.quit)
            return
    if isinstance(environment.runner, MasterRunner):
        environment.runner.send_message(KEY_MESSAGE, Credentials.secret)


# --- per-worker counts (a master) ---------------------------------------------------------

class WorkerTally:
    """What each worker reported to this master: entries and failures by worker index."""

    current: "WorkerTally | None" = None

    def __init__(self, runner: Any):
        self.runner = runner
        self.requests: dict[int, int] = {}
        self.failures: dict[int, int] = {}
        WorkerTally.current = self

    def add(self, client_id: str, data: dict[str, Any], **_: Any) -> None:
        """One report's ``stats_total`` (a worker's entries since its previous report)."""
        total = data.get("stats_total") or {}
        index = self.runner.get_worker_index(client_id)
        self.requests[index] = self.requests.get(index, 0) + int(total.get("num_requests", 0))
        self.failures[index] = self.failures.get(index, 0) + int(total.get("num_failures", 0))

    def write(self, path: Path) -> None:
        with path.open("w", newline="") as file:
            writer = csv.writer(file)
            writer.writerow(["Worker", "Request Count", "Failure Count"])
            for index in sorted(self.requests):
                writer.writerow([index, self.requests[index], self.failures.get(index, 0)])


@events.quitting.add_listener
def on_quitting(environment: Any, **_: Any) -> None:
    """With ``--csv``: one more CSV write with the last reports, then the master's per-worker CSV."""
    prefix = getattr(environment.parsed_options, "csv_prefix", None)
    if not prefix or isinstance(environment.runner, WorkerRunner):
        return
    gevent.sleep(locust_stats.CSV_STATS_INTERVAL_SEC + 0.25)
    if isinstance(environment.runner, MasterRunner) and WorkerTally.current is not None:
        WorkerTally.current.write(Path(f"{prefix}_workers.csv"))


def worker_stream(runner: Any) -> int:
    """The user-generator stream of this process: a worker's index + 1, else 0."""
    return runner.worker_index + 1 if isinstance(runner, WorkerRunner) else 0


# --- the user -------------------------------------------------------------------------------

def error_message(response: Any) -> str:
    """``<status> <code>: <message>`` from the error envelope (the body's start without one)."""
    try:
        error = response.json()["error"]
        return f"{response.status_code} {error['code']}: {error.get('message', '')}"
    except Exception:
        return f"{response.status_code}: {(response.text or '')[:200]}"


def user_pacing(options: Any) -> Any:
    """``constant_throughput(target / users)`` when ``--target-rps`` and ``-u`` are set, else ``None``
    (a shape changes the user count as it runs: its users keep their think time)."""
    target, users = getattr(options, "target_rps", 0.0) or 0.0, getattr(options, "num_users", None)
    if target <= 0 or not users:
        return None
    return constant_throughput(target / users)


def cache_label(x_cache: str | None) -> str:
    return x_cache if x_cache in CACHE_LABELS else f"other:{x_cache}"


class WeddingPlanner(FastHttpUser):
    """A planner's app: mostly cached queries, some analytics, rare invalidations."""

    def on_start(self) -> None:
        if not Credentials.secret:
            log.error("no API key for this user (set %s)", API_KEY_ENV)
            raise StopUser()
        self.rng = traffic().user_rng(worker_stream(self.environment.runner))
        self.headers = {"X-API-Key": Credentials.secret}

    def wait_time(self) -> float:
        if self.pacing is not None:
            return self.pacing(self)
        low, high = getattr(self.environment.parsed_options, "think_time", None) or (0.5, 2.0)
        return float(self.rng.uniform(low, high)) if high > low else float(low)

    @property
    def pacing(self) -> Any:
        """Locust's ``constant_throughput`` at ``--target-rps / -u`` per user, or ``None``."""
        if not hasattr(self, "_pacing"):
            self._pacing = user_pacing(self.environment.parsed_options)
        return self._pacing

    def send(self, method: str, path: str, name: str, body: dict[str, Any] | None = None) -> Any:
        """One request; a 4xx/5xx is a failure named by the envelope's error code."""
        with self.client.request(method, path, name=name, json=body, headers=self.headers,
                                 catch_response=True) as response:
            if response.status_code >= 400 or response.status_code == 0:
                response.failure(error_message(response))
            else:
                response.success()
            return response

    @task(90)
    def query(self) -> None:
        response = self.send("POST", QUERY_PATH, "POST /api/ai-cache/query", traffic().query_body(self.rng))
        if response.status_code == 200:
            self.environment.events.request.fire(
                request_type="CACHE", name=cache_label(response.headers.get("X-Cache")),
                response_time=response.request_meta["response_time"], response_length=0,
                exception=None, context={})

    @task(5)
    def statistics(self) -> None:
        self.send("GET", STATISTICS_PATH, "GET /api/ai-cache/statistics")

    @task(2)
    def seasonal_scaling(self) -> None:
        self.send("GET", SCALING_PATH, "GET /api/ai-cache/seasonal-scaling")

    @task(1)
    def invalidate(self) -> None:
        self.send("DELETE", INVALIDATE_PATH, "DELETE /api/ai-cache/invalidate", traffic().invalidate_body(self.rng))
