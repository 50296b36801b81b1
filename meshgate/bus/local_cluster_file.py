"""Where the local cluster's NATS server is: `meshgate up` starts one on a
free port and writes its URL to a small file, so that every other command on
the machine (`meshgate status`, `events`, `rollout`, a gateway started by
hand) finds it without being told.

The file is `~/.meshgate/local-cluster.json` (or in `$MESHGATE_STATE_DIR`);
it names the launcher's pid, and is ignored once that process is gone.
"""

from __future__ import annotations

import os
from pathlib import Path

import msgspec

STATE_DIR_ENV = "MESHGATE_STATE_DIR"


class LocalCluster(msgspec.Struct, frozen=True, kw_only=True):
    v: int = 1
    nats_url: str
    prefix: str = "mesh"
    pid: int


def state_file() -> Path:
    base = os.environ.get(STATE_DIR_ENV)
    return (Path(base) if base else Path.home() / ".meshgate") / "local-cluster.json"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process, but alive
    return True


def read_local_cluster(path: Path | None = None) -> LocalCluster | None:
    """The running local cluster, or None (no file, a stale one, or unreadable).

    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "local-cluster.json"
    >>> write_local_cluster("nats://127.0.0.1:40001", "mesh", path)
    >>> read_local_cluster(path).nats_url
    'nats://127.0.0.1:40001'
    >>> remove_local_cluster(path); read_local_cluster(path) is None
    True
    """
    try:
        found = msgspec.json.decode((path or state_file()).read_bytes(), type=LocalCluster)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError):
        return None
    return found if _alive(found.pid) else None


def write_local_cluster(nats_url: str, prefix: str, path: Path | None = None) -> None:
    path = path or state_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_bytes(
        msgspec.json.encode(LocalCluster(nats_url=nats_url, prefix=prefix, pid=os.getpid()))
    )
    temporary.replace(path)  # readers never see half a file


def remove_local_cluster(path: Path | None = None) -> None:
    """Remove the file if it is this process's."""
    path = path or state_file()
    try:
        found = msgspec.json.decode(path.read_bytes(), type=LocalCluster)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError):
        return
    if found.pid == os.getpid():
        path.unlink(missing_ok=True)
