"""deploy/postgres.sh: its own cluster on its own port, the suite's role and database, the URL it prints, a stop that
stops only that cluster."""
from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.conftest import ROOT

SCRIPT = ROOT / "deploy" / "postgres.sh"

pytestmark = pytest.mark.skipif(not glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
                                reason="Debian's PostgreSQL is not installed (make test installs it)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(action: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("PG_")}  # test.sh exports the suite's own
    return subprocess.run([str(SCRIPT), action], env={**base, **env}, capture_output=True, text=True, timeout=120)


@pytest.fixture
def cluster_env() -> Iterator[dict[str, str]]:
    port = _free_port()
    env = {"PG_PORT": str(port), "PG_DB": "scripttest", "PG_DURABLE": "0"}
    yield env
    _run("stop", env)
    for path in [ROOT / "var" / f"postgres-{port}", *Path("/var/lib/postgresql/sector-ai").glob(f"*-{port}")]:
        shutil.rmtree(path, ignore_errors=True)


def test_a_cluster_starts_serves_the_printed_url_and_stops(cluster_env: dict[str, str]) -> None:
    started = _run("start", cluster_env)
    assert started.returncode == 0, started.stdout + started.stderr
    url = f"postgres://suite@127.0.0.1:{cluster_env['PG_PORT']}/scripttest"
    assert f"DATABASE_URL={url}" in started.stdout
    assert _run("url", cluster_env).stdout.strip() == url
    assert _run("status", cluster_env).returncode == 0

    with psycopg.connect(url, connect_timeout=5) as conn:
        user, db = conn.execute("SELECT current_user, current_database()").fetchone()
        assert (user, db) == ("suite", "scripttest")
        assert conn.execute("SELECT rolcreatedb FROM pg_roles WHERE rolname = 'suite'").fetchone() == (True,)
        assert conn.execute("SHOW listen_addresses").fetchone() == ("127.0.0.1",)
        assert conn.execute("SHOW fsync").fetchone() == ("off",)  # PG_DURABLE=0
    assert _run("sessions", cluster_env).stdout.strip() == "0"

    again = _run("start", cluster_env)  # idempotent: the running cluster is reused
    assert again.returncode == 0 and "already running" in again.stdout

    stopped = _run("stop", cluster_env)
    assert stopped.returncode == 0, stopped.stderr
    assert _run("status", cluster_env).returncode == 1
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=3)


def test_a_password_is_required_from_127_0_0_1_once_one_is_set(cluster_env: dict[str, str]) -> None:
    env = {**cluster_env, "PG_PASSWORD": "s3cret/with:odd@chars"}
    started = _run("start", env)
    assert started.returncode == 0, started.stdout + started.stderr
    url = started.stdout.strip().splitlines()[-1].removeprefix("DATABASE_URL=")
    assert url == f"postgres://suite:s3cret%2Fwith%3Aodd%40chars@127.0.0.1:{env['PG_PORT']}/scripttest"
    with psycopg.connect(url, connect_timeout=5) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(f"postgres://suite@127.0.0.1:{env['PG_PORT']}/scripttest", connect_timeout=5)


@pytest.mark.parametrize(("env", "named"), [({"PG_PORT": "54x"}, "PG_PORT"), ({"PG_DB": "no-dashes"}, "PG_DB"),
                                            ({"PG_DURABLE": "maybe"}, "PG_DURABLE")])
def test_bad_settings_are_refused_by_name(env: dict[str, str], named: str) -> None:
    result = _run("status", env)
    assert result.returncode != 0 and named in result.stderr
