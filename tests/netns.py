"""Real links for tests: network namespaces joined by veth pairs, and code run inside them.

    @requires_root
    def test_something() -> None:
        with veth_pair() as link:
            with start_in_netns(link.evse_ns, serve, link.evse_if) as server:
                result = run_in_netns(link.ev_ns, client, link.ev_if)
            logs = server.result

- `requires_root`: skips (with the reason) where the test is not root or `ip netns` is missing.
- `veth_pair(prefix)`: two fresh namespaces and a veth between them, both ends up, IPv6 DAD off
  (link-local addresses usable at once); everything is deleted on exit, also after a failure.
  Names carry a random suffix, so parallel or aborted runs never collide.
- `veth_pair_into(evse_ns, prefix)`: one more EV namespace and veth, whose EVSE end is in an
  existing namespace (one SECC process serving several links).
- `run_in_netns(ns, target, *args)`: `target(*args)` in a forked child inside the namespace; its
  (picklable) result is returned, its exception re-raised with the child's traceback as a note.
- `start_in_netns(ns, target, *args)`: a long-lived `target(control, *args)` in a forked child;
  it calls `control.ready(info)` once serving and returns when `control.wait()` does, i.e. when
  the test calls `stop()` (or leaves the `with` block). `stop()` returns its result.

Children are forked ("fork" start method) and enter the namespace with setns(2) through ctypes
(Python 3.11 has no `os.setns`), so targets and arguments need not be picklable, only results.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import multiprocessing.connection
import multiprocessing.process
import os
import secrets
import shutil
import signal
import subprocess
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing.synchronize import Event
from typing import Any, Generic, TypeVar, cast

import pytest

__all__ = [
    "NetnsControl",
    "NetnsProcess",
    "VethPair",
    "requires_root",
    "run_in_netns",
    "start_in_netns",
    "veth_pair",
    "veth_pair_into",
]

T = TypeVar("T")

NETNS_DIR = "/var/run/netns"
CLONE_NEWNET = 0x40000000
LINK_LOCAL_TIMEOUT = 10.0
_FORK = multiprocessing.get_context("fork")


def _unavailable() -> str | None:
    if os.geteuid() != 0:
        return "needs root to create network namespaces and veth pairs"
    if shutil.which("ip") is None:
        return "iproute2 (`ip`) is not installed"
    probe = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        return f"`ip netns` is not available: {probe.stderr.strip()}"
    return None


_REASON = _unavailable()
requires_root = pytest.mark.skipif(_REASON is not None, reason=_REASON or "")


def _ip(*args: str) -> str:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


# --------------------------------------------------------------------------- entering a namespace

_libc = ctypes.CDLL(None, use_errno=True)


def enter_netns(ns: str) -> None:
    """Move the calling thread into network namespace `ns` (a child process, never the tests)."""
    path = os.path.join(NETNS_DIR, ns)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({path}): {os.strerror(err)}")
    finally:
        os.close(fd)


def _send_outcome(conn: multiprocessing.connection.Connection, kind: str, value: Any) -> None:
    try:
        conn.send((kind, value))
    except Exception as exc:  # an unpicklable result or exception
        conn.send(("error", RuntimeError(f"child {kind} could not be sent back: {exc!r}")))


def _send_error(conn: multiprocessing.connection.Connection, exc: BaseException) -> None:
    exc.add_note("in the namespace child:\n" + "".join(traceback.format_exception(exc)))
    _send_outcome(conn, "error", exc)


def _receive(conn: multiprocessing.connection.Connection, timeout: float, what: str) -> Any:
    if not conn.poll(timeout):
        raise TimeoutError(f"{what}: no answer from the namespace child within {timeout} s")
    try:
        kind, value = conn.recv()
    except EOFError:
        raise RuntimeError(f"{what}: the namespace child died without an answer") from None
    if kind == "error":
        raise value
    return value


def _end(process: multiprocessing.process.BaseProcess, timeout: float) -> None:
    """Join the child; terminate, then kill it if it does not end by itself."""
    process.join(timeout)
    if process.is_alive():
        process.terminate()
        process.join(2.0)
    if process.is_alive():
        process.kill()
        process.join(2.0)


def run_in_netns(ns: str, target: Callable[..., T], *args: Any, timeout: float = 60.0) -> T:
    """`target(*args)` in a child process inside namespace `ns`; its result, or its exception."""
    receiver, sender = _FORK.Pipe(duplex=False)

    def child() -> None:
        try:
            enter_netns(ns)
            _send_outcome(sender, "result", target(*args))
        except BaseException as exc:
            _send_error(sender, exc)

    process = _FORK.Process(target=child, name=f"netns-{ns}", daemon=True)
    process.start()
    sender.close()
    try:
        result: T = _receive(receiver, timeout, f"run_in_netns({ns}, {target.__name__})")
        return result
    finally:
        receiver.close()
        _end(process, 5.0)


# --------------------------------------------------------------------------- long-lived children


class NetnsControl:
    """Handed to a `start_in_netns` target: signal readiness, wait for the stop request."""

    def __init__(self, conn: multiprocessing.connection.Connection, stop: Event) -> None:
        self._conn = conn
        self._stop = stop

    def ready(self, info: Any = None) -> None:
        """Serving now; `info` (picklable) becomes the handle's `info`."""
        _send_outcome(self._conn, "ready", info)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the test asks to stop (True), or `timeout` passes (False)."""
        return self._stop.wait(timeout)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()


class NetnsProcess(Generic[T]):
    """A running `start_in_netns` child. `stop()` ends it and returns the target's result."""

    def __init__(
        self,
        process: multiprocessing.process.BaseProcess,
        conn: multiprocessing.connection.Connection,
        stop_event: Event,
        info: Any,
    ) -> None:
        self.process = process
        self.info = info
        self._conn = conn
        self._stop = stop_event
        self._stopped = False
        self._result: T | None = None
        self._error: BaseException | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def stop(self, timeout: float = 10.0) -> T:
        """Ask the target to return, wait for its result (re-raising its exception), reap it."""
        if self._stopped:
            if self._error is not None:
                raise self._error
            return cast(T, self._result)
        self._stopped = True
        self._stop.set()
        try:
            result: T = _receive(self._conn, timeout, f"stopping {self.process.name}")
        except BaseException as exc:
            self._error = exc
            raise
        finally:
            self._conn.close()
            _end(self.process, 5.0)
        self._result = result
        return result

    @property
    def result(self) -> T:
        """The target's result (stops the child first if still running)."""
        return self.stop()

    def __enter__(self) -> NetnsProcess[T]:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.stop()
        else:  # keep the test's own failure; still end the child
            with contextlib.suppress(BaseException):
                self.stop()


def start_in_netns(
    ns: str, target: Callable[..., T], *args: Any, ready_timeout: float = 30.0
) -> NetnsProcess[T]:
    """Start `target(control, *args)` in a child inside `ns`; return once it called `ready()`."""
    receiver, sender = _FORK.Pipe(duplex=False)
    stop_event = _FORK.Event()

    def child() -> None:
        try:
            enter_netns(ns)
            _send_outcome(sender, "result", target(NetnsControl(sender, stop_event), *args))
        except BaseException as exc:
            _send_error(sender, exc)

    name = f"netns-{ns}-{getattr(target, '__name__', 'target')}"
    process = _FORK.Process(target=child, name=name, daemon=True)
    process.start()
    sender.close()
    try:
        info = _receive(receiver, ready_timeout, f"starting {name}")
    except BaseException:
        receiver.close()
        stop_event.set()
        _end(process, 2.0)
        raise
    return NetnsProcess(process, receiver, stop_event, info)


# --------------------------------------------------------------------------- veth pairs


@dataclass(frozen=True, slots=True)
class VethPair:
    """Two namespaces and the veth between them; addresses are link-local, without scope."""

    evse_ns: str
    ev_ns: str
    evse_if: str
    ev_if: str
    evse_address: str
    ev_address: str


def _disable_dad(interface: str) -> None:
    for name in (interface, "default"):
        with open(f"/proc/sys/net/ipv6/conf/{name}/accept_dad", "w") as f:
            f.write("0")


def _link_local(ns: str, interface: str) -> str | None:
    out = _ip("-n", ns, "-6", "-o", "addr", "show", "dev", interface, "scope", "link")
    for line in out.splitlines():
        fields = line.split()
        if "inet6" in fields and "tentative" not in fields:
            return fields[fields.index("inet6") + 1].split("/")[0]
    return None


def _wait_link_local(ns: str, interface: str) -> str:
    deadline = time.monotonic() + LINK_LOCAL_TIMEOUT
    while (address := _link_local(ns, interface)) is None:
        if time.monotonic() > deadline:
            raise RuntimeError(f"no link-local address on {interface} in {ns}")
        time.sleep(0.02)
    return address


def _kill_namespace(ns: str) -> None:
    """End every process still inside `ns` (only ours: the name is unique), then delete it."""
    done = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True, check=False)
    for pid in done.stdout.split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)
    subprocess.run(["ip", "netns", "delete", ns], capture_output=True, check=False)


def _names(prefix: str) -> tuple[str, str]:
    suffix = secrets.token_hex(3)
    short = prefix[:7]  # interface names have at most 15 characters
    return f"{prefix}-{suffix}", f"{short}{suffix}"


def _link(evse_ns: str, ev_ns: str, evse_if: str, ev_if: str) -> VethPair:
    _ip(
        "-n", evse_ns, "link", "add", evse_if, "type", "veth", "peer", "name", ev_if, "netns", ev_ns
    )
    for ns, interface in ((evse_ns, evse_if), (ev_ns, ev_if)):
        run_in_netns(ns, _disable_dad, interface, timeout=10.0)
        _ip("-n", ns, "link", "set", "dev", "lo", "up")
        _ip("-n", ns, "link", "set", "dev", interface, "up")
    return VethPair(
        evse_ns=evse_ns,
        ev_ns=ev_ns,
        evse_if=evse_if,
        ev_if=ev_if,
        evse_address=_wait_link_local(evse_ns, evse_if),
        ev_address=_wait_link_local(ev_ns, ev_if),
    )


@contextlib.contextmanager
def veth_pair(prefix: str = "v2g") -> Iterator[VethPair]:
    """Namespaces `<prefix>-<id>-evse` and `-ev` with interfaces `<prefix><id>s` and `...e`."""
    base, short = _names(prefix)
    evse_ns, ev_ns = f"{base}-evse", f"{base}-ev"
    created: list[str] = []
    try:
        for ns in (evse_ns, ev_ns):
            _ip("netns", "add", ns)
            created.append(ns)
        yield _link(evse_ns, ev_ns, f"{short}s", f"{short}e")
    finally:
        for ns in reversed(created):
            _kill_namespace(ns)


@contextlib.contextmanager
def veth_pair_into(evse_ns: str, prefix: str = "v2g") -> Iterator[VethPair]:
    """A new EV namespace linked by a new veth to the existing namespace `evse_ns`.

    On exit the EV namespace is deleted, which deletes the veth (both ends) with it.
    """
    base, short = _names(prefix)
    ev_ns = f"{base}-ev"
    _ip("netns", "add", ev_ns)
    try:
        yield _link(evse_ns, ev_ns, f"{short}s", f"{short}e")
    finally:
        _kill_namespace(ev_ns)
