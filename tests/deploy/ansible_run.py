"""Run ansible-playbook / ansible-lint from this venv against the repository's playbooks."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PLAYBOOKS = sorted((REPO / "playbooks").glob("*.yml"))
BIN = Path(sys.executable).parent


def tool(name: str) -> Path:
    return BIN / name


@dataclass(frozen=True)
class PlaybookRun:
    returncode: int
    output: str

    def recap(self) -> dict[str, dict[str, int]]:
        """PLAY RECAP counters per host: {'m1': {'ok': 40, 'changed': 0, ...}}."""
        counters: dict[str, dict[str, int]] = {}
        recap = self.output.split("PLAY RECAP", 1)[-1]
        for host, rest in re.findall(r"(?m)^(\S+)\s+: (ok=.*)$", recap):
            counters[host] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", rest)}
        return counters


def ansible_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "ETCD"))}
    env.update(
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_HOST_KEY_CHECKING="False",
        ANSIBLE_CALLBACKS_ENABLED="ansible.posix.profile_tasks",
    )
    return env


def playbook(
    inventory: Path, name: str, *extra: str, timeout: float = 1800, log: Path | None = None
) -> PlaybookRun:
    """`ansible-playbook -i inventory playbooks/<name>` from the repository's top directory
    (so its ansible.cfg applies), as an operator runs it."""
    result = subprocess.run(
        [str(tool("ansible-playbook")), "-i", str(inventory), f"playbooks/{name}", *extra],
        cwd=REPO,
        env=ansible_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    output = result.stdout + result.stderr
    if log is not None:
        log.write_text(output)
    return PlaybookRun(result.returncode, output)


def run(command: Sequence[str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(command), cwd=REPO, env=ansible_env(), capture_output=True, text=True,
        timeout=timeout, check=False,
    )  # fmt: skip
