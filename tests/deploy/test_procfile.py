"""The root Procfile starts each process with the command deploy/suite.sh uses (one source of truth for operators)."""
from __future__ import annotations

import re
import subprocess

from tests.conftest import ROOT

ENV = {"WEB_HOST": "10.0.0.5", "CELERY_QUEUES": "inference,default", "CELERY_CONCURRENCY": "3"}


def _suite_command(name: str) -> str:
    """deploy/suite.sh's command_for NAME, with the variables above (the function is read out of the script)."""
    function = re.search(r"^command_for\(\) \{.*?^\}", (ROOT / "deploy" / "suite.sh").read_text(), flags=re.M | re.DOTALL)
    assert function is not None
    script = (f"PY=python; WEB_HOST={ENV['WEB_HOST']}; WEB_PORT=8000; CELERY_QUEUES={ENV['CELERY_QUEUES']}; "
              f"CELERY_CONCURRENCY={ENV['CELERY_CONCURRENCY']}; RUN=var/run\n{function.group(0)}\ncommand_for {name}")
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True).stdout.strip()


def _procfile() -> dict[str, str]:
    """Each Procfile line's command as a shell expands it with the variables above (PORT unset: 8000)."""
    lines = dict(line.split(": ", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line.strip())
    return {name: subprocess.run(["bash", "-c", f"echo {command}"], capture_output=True, text=True, check=True,
                                 env={"PATH": "/usr/bin:/bin", **ENV}).stdout.strip() for name, command in lines.items()}


def test_the_procfile_runs_what_suite_sh_runs() -> None:
    procfile = _procfile()
    assert sorted(procfile) == ["beat", "news", "web", "worker"]
    for name, command in procfile.items():
        assert command == _suite_command(name), name
