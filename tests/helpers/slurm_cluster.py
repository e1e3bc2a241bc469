"""A real single-node SLURM cluster in a folder, for the tests and the SLURM benchmark.

Debian's `slurm-wlm` and `munge` (the Makefile's `system` target installs them), started as root without
systemd: `munged`, `slurmctld` and `slurmd` run from a private folder (own munge key and socket, own ports,
own state), so the machine's own SLURM files are left alone apart from one link (below). The node offers two
partitions, `cpu` and `gpu` (the names the repository's `slurm/` profile uses), and two fake GPUs: a gres GPU
needs a `File=`, and any device file will do when nothing opens it.

One file goes outside the folder: /etc/slurm/slurm.conf, a link to the folder's configuration, because the
plugin's job step drops SLURM_* variables (SLURM_CONF among them) before its inner `srun`, which then reads
the default path. The link is removed afterwards; a machine with a slurm.conf of its own is left alone (the
tests skip).

No slurmdbd runs, so `sacct` has nothing to answer from: clients must ask `squeue`, and MinJobAge is an hour
so finished jobs stay visible to it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Iterator

PACKAGES = ("slurm-wlm", "munge")
DEFAULT_CONF = Path("/etc/slurm/slurm.conf")
DAEMONS = ("munged", "slurmctld", "slurmd")

# the plugin's settings for this cluster: squeue (no accounting) and a short first status check
EXECUTOR_ARGS = ("--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "4",
                 "--slurm-no-account")


def why_not_available() -> str | None:
    """None when a cluster can be brought up here, else the reason (for a visible skip)."""
    if os.geteuid() != 0:
        return "a single-node SLURM needs root (munged, slurmctld and slurmd run as root here)"
    missing = [d for d in DAEMONS if shutil.which(d) is None and not Path("/usr/sbin", d).exists()]
    if DEFAULT_CONF.exists() or DEFAULT_CONF.is_symlink():
        return f"{DEFAULT_CONF} exists: this machine has a SLURM of its own, which the tests leave alone"
    if missing and shutil.which("apt-get") is None:
        return f"{', '.join(missing)} missing and no apt-get to install {' '.join(PACKAGES)}"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_config(root: Path, cpus: int = 16, gpus: int = 2, memory_mb: int = 64000) -> Path:
    """slurm.conf and gres.conf under `root`; returns slurm.conf's path (for SLURM_CONF). The node claims
    more CPUs and memory than it has (config_overrides), so the profile's requests fit as written."""
    node = socket.gethostname().split(".")[0]
    for name in ("state", "spool", "log"):
        (root / name).mkdir(parents=True, exist_ok=True)
    devices = ["/dev/null", "/dev/zero", "/dev/full", "/dev/random"][:gpus]
    (root / "gres.conf").write_text("".join(f"NodeName={node} Name=gpu File={d}\n" for d in devices))
    conf = root / "slurm.conf"
    conf.write_text(f"""\
ClusterName=cineflow-test
SlurmctldHost={node}(127.0.0.1)
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={root / 'munge.socket'}
StateSaveLocation={root / 'state'}
SlurmdSpoolDir={root / 'spool'}
SlurmctldPidFile={root / 'slurmctld.pid'}
SlurmdPidFile={root / 'slurmd.pid'}
SlurmctldLogFile={root / 'log' / 'slurmctld.log'}
SlurmdLogFile={root / 'log' / 'slurmd.log'}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
GresTypes=gpu
ReturnToService=2
MinJobAge=3600
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SlurmdParameters=config_overrides
NodeName={node} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} Gres=gpu:{gpus} State=UNKNOWN
PartitionName=cpu Nodes=ALL Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=ALL MaxTime=INFINITE State=UP
""")
    return conf


@contextlib.contextmanager
def single_node_cluster(root: Path, timeout_s: float = 60) -> Iterator[dict]:
    """Brings the cluster up under `root`, yields the environment its clients need, and stops it."""
    root.mkdir(parents=True, exist_ok=True)
    conf = write_config(root)
    key = root / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    env = {**os.environ, "SLURM_CONF": str(conf)}
    commands = [
        ["munged", "--foreground", "--force", f"--key-file={key}", f"--socket={root / 'munge.socket'}",
         f"--pid-file={root / 'munged.pid'}", f"--log-file={root / 'log' / 'munged.log'}",
         f"--seed-file={root / 'munge.seed'}"],
        ["slurmctld", "-D", "-c"],
        ["slurmd", "-D"],
    ]
    daemons: list[subprocess.Popen] = []
    DEFAULT_CONF.parent.mkdir(parents=True, exist_ok=True)
    DEFAULT_CONF.symlink_to(conf)
    try:
        for command in commands:  # in the foreground, so they are ours to stop (and to reap)
            daemons.append(subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                                            stderr=open(root / "log" / f"{command[0]}.err", "w")))
            if command[0] == "munged":
                _wait_for(root / "munge.socket", timeout_s)
        _wait_idle(env, root, timeout_s)
        yield env
    finally:
        for daemon in reversed(daemons):
            daemon.terminate()
            try:
                daemon.wait(timeout=10)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
        DEFAULT_CONF.unlink()


def _wait_for(path: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{path} did not appear in {timeout_s} s")
        time.sleep(0.05)


def _wait_idle(env: dict, root: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    state = ""
    while time.monotonic() < deadline:
        out = subprocess.run(["sinfo", "-h", "-o", "%t"], env=env, capture_output=True, text=True, timeout=30)
        state = out.stdout.strip()
        if out.returncode == 0 and state.splitlines() and all(s == "idle" for s in state.splitlines()):
            return
        time.sleep(0.5)
    logs = "\n".join(p.read_text()[-2000:] for p in sorted((root / "log").glob("*.log")))
    raise RuntimeError(f"the SLURM node did not become idle in {timeout_s} s (state {state!r}):\n{logs}")


def job_records(env: dict) -> list[dict]:
    """Every job slurmctld still remembers (MinJobAge), as `scontrol show job` fields."""
    out = subprocess.run(["scontrol", "-o", "show", "job"], env=env, capture_output=True, text=True,
                         timeout=30, check=True).stdout
    records = []
    for line in out.splitlines():
        fields = {}
        for token in line.split():
            name, _, value = token.partition("=")
            fields[name] = value
        if fields:
            records.append(fields)
    return records
