"""One registered model's lifecycle lock on an MLflow tracking server.

MLflow's REST API has no compare-and-set, but creating a registered model whose name is taken
fails atomically. A promotion or rollback holds `<model>.lifecycle-lock` (a registered model with
no versions) for the few requests between reading an alias and its history and writing them back.
The lock's tags say who holds it and until when:

- the holder deletes it when done;
- a holder that crashed leaves it behind. A waiter on the same machine sees that the process is
  gone and takes the lock over at once; elsewhere, once its lease has run out.
- Taking over renames the stale lock to `<lock>~<holder id>`. A rename is atomic and that name can
  be taken only once, so two waiters cannot both take over one stale lock, and neither can move a
  fresh lock created after it. The renamed lock stays for a while as a tombstone to keep that
  name taken; taking over a later stale lock deletes old tombstones.

The lease assumes a holder finishes within LEASE_SECONDS: a holder checks before each write that
it is still well inside its lease and otherwise stops (and undoes what it wrote).
"""

import contextlib
import os
import random
import socket
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Protocol

from training.errors import TrainingError
from training.registry import AlreadyExists, NotFound, Notice, RegistryError

LOCK_SUFFIX = ".lifecycle-lock"
TOMBSTONE_MARK = "~"
LEASE_SECONDS = 30.0
WRITE_MARGIN_SECONDS = 10.0  # no write starts later than this before the lease runs out
WAIT_SECONDS = 90.0  # longer than a lease, so a crashed holder elsewhere never makes us give up
TOMBSTONE_KEEP_SECONDS = 600.0
DESCRIPTION = (
    "Held by a promotion or rollback of the model named before '.lifecycle-lock' for a moment; "
    "safe to delete when none is running."
)


class Api(Protocol):
    def call(
        self,
        method: str,
        endpoint: str,
        params: dict[str, str] | None = None,
        body: Any = None,
    ) -> dict[str, Any]: ...


def lock_name(model: str) -> str:
    return f"{model}{LOCK_SUFFIX}"


def is_lock_name(name: str) -> bool:
    """A lock or a tombstone, which listings of models leave out."""
    return name.endswith(LOCK_SUFFIX) or f"{LOCK_SUFFIX}{TOMBSTONE_MARK}" in name


def _machine() -> str:
    """This machine and process namespace: where a holder's pid can be checked from here."""
    parts = [socket.gethostname()]
    with contextlib.suppress(OSError):
        with open("/proc/sys/kernel/random/boot_id") as boot_id:
            parts.append(boot_id.read().strip())
        parts.append(os.readlink("/proc/self/ns/pid"))
    return "/".join(parts)


MACHINE = _machine()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process: alive
    return True


@dataclass(frozen=True)
class Holder:
    """Who holds a lock, read from its tags."""

    holder: str
    machine: str
    host: str
    pid: int | None
    expires: float  # seconds since the epoch
    purpose: str
    updated_ms: int

    @classmethod
    def from_answer(cls, model: dict[str, Any]) -> "Holder":
        tags = {str(t["key"]): str(t.get("value", "")) for t in model.get("tags", [])}
        created = int(model.get("creation_timestamp") or 0)
        try:
            expires = float(tags["expires"])
        except (KeyError, ValueError):
            expires = created / 1000 + LEASE_SECONDS  # not one of ours: give it one lease
        pid = tags.get("pid", "")
        return cls(
            holder=tags.get("holder") or f"created-{created}",
            machine=tags.get("machine", ""),
            host=tags.get("host", "an unknown host"),
            pid=int(pid) if pid.isdigit() else None,
            expires=expires,
            purpose=tags.get("purpose", "a lifecycle command"),
            updated_ms=int(model.get("last_updated_timestamp") or created),
        )

    def stale(self, now: float) -> bool:
        if now > self.expires:
            return True
        return self.machine == MACHINE and self.pid is not None and not _alive(self.pid)

    def describe(self) -> str:
        until = datetime.fromtimestamp(self.expires, UTC).strftime("%H:%M:%S UTC")
        return f"{self.purpose}, pid {self.pid} on {self.host}, lease until {until}"


class ModelLock:
    def __init__(
        self,
        api: Api,
        model: str,
        notice: Notice,
        purpose: str = "",
        *,
        lease: float = LEASE_SECONDS,
        wait: float = WAIT_SECONDS,
    ) -> None:
        self.api = api
        self.model = model
        self.name = lock_name(model)
        self.notice = notice
        self.purpose = purpose or f"a lifecycle command on {model}"
        self.lease = lease
        self.wait = wait
        self.holder = uuid.uuid4().hex
        self.acquired_at: float | None = None

    def __enter__(self) -> "ModelLock":
        self.acquire()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()

    def acquire(self) -> None:
        deadline = time.monotonic() + self.wait
        delay = 0.05
        announced = False
        while True:
            started = time.monotonic()
            try:
                self.api.call("POST", "registered-models/create", body=self._lock_body())
                self.acquired_at = started
                return
            except AlreadyExists:
                pass
            held = self._read(self.name)
            if held is not None and held.stale(time.time()):
                self._take_over(held)
                continue
            if held is None:
                continue  # released between our attempt and the read: try again at once
            if time.monotonic() >= deadline:
                raise TrainingError(
                    f"another lifecycle command holds the lock on {self.model} ({held.describe()}); "
                    f"nothing changed. Try again; if none is running, delete the registered model "
                    f"{self.name} in MLflow"
                )
            if not announced:
                self.notice(f"waiting for the lock on {self.model}: {held.describe()}")
                announced = True
            time.sleep(random.uniform(delay / 2, delay))  # noqa: S311 - jitter, not a secret
            delay = min(delay * 2, 0.5)

    def check_held(self) -> None:
        """Raise unless there is time left in the lease for one more write."""
        if self.acquired_at is None:
            raise RegistryError(f"the lock on {self.model} is not held")
        if time.monotonic() - self.acquired_at > self.lease - WRITE_MARGIN_SECONDS:
            raise RegistryError(
                f"the MLflow server was too slow: the lock on {self.model} would run out "
                "before the change is written; what was written is undone"
            )

    def release(self) -> None:
        if self.acquired_at is None:
            return
        held_for = time.monotonic() - self.acquired_at
        self.acquired_at = None
        try:
            if held_for < self.lease:
                self.api.call("DELETE", "registered-models/delete", body={"name": self.name})
            else:
                # Past the lease another command may hold the name now: retire only our own lock.
                self._take_over(Holder("", "", "", None, 0.0, "", 0), own=self.holder)
        except NotFound:
            pass
        except RegistryError as exc:
            self.notice(f"could not release the lock on {self.model} ({exc}); its lease ends it")

    def _lock_body(self) -> dict[str, Any]:
        tags = {
            "holder": self.holder,
            "machine": MACHINE,
            "host": socket.gethostname(),
            "pid": str(os.getpid()),
            "expires": f"{time.time() + self.lease:.3f}",
            "purpose": self.purpose,
        }
        return {
            "name": self.name,
            "description": DESCRIPTION,
            "tags": [{"key": key, "value": value} for key, value in tags.items()],
        }

    def _read(self, name: str) -> Holder | None:
        try:
            answer = self.api.call("GET", "registered-models/get", {"name": name})
        except NotFound:
            return None
        return Holder.from_answer(answer["registered_model"])

    def _rename(self, old: str, new: str) -> None:
        self.api.call("POST", "registered-models/rename", body={"name": old, "new_name": new})

    def _take_over(self, held: Holder, own: str | None = None) -> None:
        """Move the lock `held` (or our own, `own`) aside, if it is still the one at the name."""
        expected = own or held.holder
        tombstone = f"{self.name}{TOMBSTONE_MARK}{expected}"
        try:
            self._rename(self.name, tombstone)
        except (AlreadyExists, NotFound):
            return  # taken over by another waiter first, or released
        moved = self._read(tombstone)
        if moved is not None and moved.holder != expected:
            # A fresh lock replaced the one we read: give it back to its holder.
            with contextlib.suppress(RegistryError):
                self._rename(tombstone, self.name)
            return
        if own is None:
            self.notice(f"took over a stale lock on {self.model} ({held.describe()})")
        self._delete_old_tombstones()

    def _delete_old_tombstones(self) -> None:
        prefix = f"{self.name}{TOMBSTONE_MARK}"
        escaped = prefix.replace("'", "\\'")
        cutoff_ms = (time.time() - TOMBSTONE_KEEP_SECONDS) * 1000
        with contextlib.suppress(RegistryError):
            found = self.api.call(
                "GET", "registered-models/search", {"filter": f"name LIKE '{escaped}%'"}
            )
            for model in found.get("registered_models", []):
                name = str(model.get("name", ""))
                updated = int(model.get("last_updated_timestamp") or 0)
                if name.startswith(prefix) and updated < cutoff_ms:
                    self.api.call("DELETE", "registered-models/delete", body={"name": name})
