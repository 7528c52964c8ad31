"""A real PostgreSQL server on loopback for the demo and the tests: a throwaway cluster.

initdb and the server refuse to run as root, so as root they run as the `postgres` user the
package creates, in a directory that user owns. Password authentication (SCRAM) is on, as a
cluster's database would have it, so the URI carries a password like the chart's Secret does.
"""

import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from loadtest.processes import free_port


def _bin(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        for version in ("17", "16", "15"):
            candidate = Path(f"/usr/lib/postgresql/{version}/bin/{name}")
            if candidate.exists():
                return str(candidate)
        raise RuntimeError(f"{name} missing: run `make system-deps` (Debian package postgresql)")
    return found


def _as_owner(command: list[str], user: str | None) -> list[str]:
    return ["runuser", "-u", user, "--", *command] if user else command


@contextmanager
def postgres_server() -> Iterator[str]:
    """Start PostgreSQL on a free loopback port; yield its postgresql:// URI; remove it after."""
    user = "postgres" if os.geteuid() == 0 else None
    root = Path(tempfile.mkdtemp(prefix="loop-postgres-"))
    if user:
        entry = pwd.getpwnam(user)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    data, password_file = root / "data", root / "password"
    password = secrets.token_urlsafe(16)
    password_file.write_text(password)
    if user:
        os.chown(password_file, pwd.getpwnam(user).pw_uid, -1)
    port = free_port()
    log = root / "postgres.log"
    try:
        subprocess.run(
            _as_owner(
                [_bin("initdb"), "-D", str(data), "-U", "loop", "--auth=scram-sha-256",
                 f"--pwfile={password_file}", "-E", "UTF8", "--no-sync"],
                user,
            ),
            check=True,
            capture_output=True,
            timeout=120,
        )  # fmt: skip
        options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
        subprocess.run(
            _as_owner(
                [_bin("pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "start"],
                user,
            ),
            check=True,
            capture_output=True,
            timeout=120,
        )
        yield f"postgresql://loop:{password}@127.0.0.1:{port}/postgres"
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run(
                _as_owner([_bin("pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], user),
                capture_output=True,
                timeout=60,
                check=False,
            )
        shutil.rmtree(root, ignore_errors=True)
