"""A labgrid place's life on the controller: reserve, wait, acquire, read its SSH address, release.

labgrid's coordinator tracks places; edgebench queues for one with a reservation (a tag filter,
or `name=PLACE` for a named place), keeps that reservation alive by polling it while it waits
(the coordinator drops a reservation 60 s after its last poll), acquires the place it is
allocated and cancels the reservation, so that the place is free for the next queued run the
moment edgebench releases it. A place is released when its device's work ends, on Ctrl-C, and
at the controller's exit; a controller killed with -9 leaves it acquired (labgrid's locks never
expire: labgrid-project/labgrid#1739), which `edgebench devices release` and `run --resume` undo.

labgrid's client is asyncio and gRPC: one event loop per coordinator runs in a thread of its own,
and worker threads hand it coroutines. labgrid and grpc are imported here only, so that a
controller without the `labs` extra loads everything else.
"""

from __future__ import annotations

import asyncio
import atexit
import getpass
import logging
import os
import re
import socket
import threading
import time
from dataclasses import dataclass
from typing import Callable, Mapping

from edgebench.errors import ConfigError, ConnectionLost, TransportError, Unreachable

COORDINATOR_ENV = "LG_COORDINATOR"
DEFAULT_PORT = 20408
# well inside the coordinator's 60 s: a late poll would drop the reservation and lose the queue place
POLL_S = 2.0
CALL_TIMEOUT_S = 30.0
EXTRA = "labs"

# labgrid's gRPC client forks nothing; grpc's fork handlers only slow every subprocess down (and
# labgrid's own tests turn them off the same way)
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "0")


class LabgridError(TransportError):
    kind = "labgrid"


class CoordinatorGone(LabgridError):
    """The coordinator went away while edgebench held a place: the place is no longer known to be ours."""

    kind = "coordinator-gone"


def _labgrid():
    """labgrid's client modules, or a sentence saying which extra brings them."""
    try:
        from labgrid.remote import client, common
        from labgrid.remote.generated import labgrid_coordinator_pb2 as pb2
        from labgrid.util.version import labgrid_version
    except ImportError as exc:
        raise ConfigError(f"labgrid devices need labgrid, which is not installed ({exc}): "
                          f"pip install 'edgebench[{EXTRA}]'", key="transport") from exc
    # its client logs a lost coordinator at ERROR through the root logger, which Python's last-resort
    # handler would print beside edgebench's own sentence
    logging.getLogger().addHandler(logging.NullHandler())
    return client, common, pb2, labgrid_version


def owner_name() -> str:
    """Who holds a place, as labgrid writes it: `host/user` (LG_HOSTNAME, LG_USERNAME override)."""
    return f"{os.environ.get('LG_HOSTNAME', socket.gethostname())}/{os.environ.get('LG_USERNAME', getpass.getuser())}"


def coordinator_address(configured: str | None) -> str:
    address = configured or os.environ.get(COORDINATOR_ENV)
    if not address:
        raise ConfigError(f"a labgrid device needs its coordinator: set `coordinator: host:port` in the device "
                          f"profile or ${COORDINATOR_ENV}", key="coordinator")
    return address if ":" in address.rsplit("]", 1)[-1] else f"{address}:{DEFAULT_PORT}"


@dataclass(frozen=True)
class SshRoute:
    """Where a place's NetworkService says its device listens, and how to get there."""

    address: str
    port: int
    user: str
    proxy_command: str | None  # labgrid's own `ssh <exporter> -W host:port` for an isolated lab


@dataclass
class HeldPlace:
    place: str
    lab: str  # the exporter that publishes its resources
    coordinator: str
    route: SshRoute
    adopted: bool = False  # left acquired by a killed run and taken over by its resume


class Coordinator:
    """One client session with a coordinator, on an event loop in its own thread. One per process and
    address (`coordinator()`): gRPC shares one connection among a process's channels to an address, and
    the coordinator takes a second client stream from the same peer for a bug."""

    def __init__(self, address: str):
        self.client, self.common, self.pb2, version = _labgrid()
        self.version = version()
        self.address = address
        self.owner = owner_name()
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=f"labgrid {address}", daemon=True)
        self._thread.start()
        self.session = None
        try:
            self.call(self._start(), what="connecting")
        except BaseException:
            self.close()
            raise

    async def _start(self):
        import grpc

        session = self.client.ClientSession(self.address, self.loop)
        try:
            # one plain call first: its error says what a session start only logs
            await session.stub.GetPlaces(self.pb2.GetPlacesRequest(), timeout=CALL_TIMEOUT_S)
        except grpc.aio.AioRpcError as exc:
            await session.channel.close()
            raise self._unreachable(exc) from None
        await session.start()
        self.session = session

    def _unreachable(self, exc) -> LabgridError:
        import grpc

        details = exc.details() or exc.code().name
        # an HTTP/1 answer (labgrid < 25's crossbar WebSocket) or an RPC the server does not know
        if exc.code() == grpc.StatusCode.UNIMPLEMENTED or re.search(r"http/?1|failed parsing http/2", details, re.I):
            return LabgridError(f"the labgrid coordinator at {self.address} does not speak this client's protocol "
                                f"(labgrid {self.version}): client and coordinator versions must match, and labgrid "
                                f"before 25.0 used crossbar instead of gRPC")
        return Unreachable(f"cannot reach the labgrid coordinator at {self.address}: {details}")

    @property
    def alive(self) -> bool:
        return self.session is not None and not self.session.stopping.is_set()

    def call(self, coroutine, what: str, timeout: float = CALL_TIMEOUT_S * 2):
        """Run a coroutine on the session's loop; gRPC errors become one sentence."""
        import grpc

        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        try:
            return future.result(timeout)
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNIMPLEMENTED):
                raise self._unreachable(exc) from None
            raise LabgridError(f"labgrid coordinator {self.address}: {what} failed: {exc.details()}") from None
        except TimeoutError:
            future.cancel()
            raise ConnectionLost(f"the labgrid coordinator at {self.address} did not answer ({what}) "
                                 f"within {timeout:g} s") from None

    def rpc(self, method: str, request, what: str):
        stub = self.session.stub

        async def send():  # made on the loop's own thread, as grpc.aio wants
            return await getattr(stub, method)(request, timeout=CALL_TIMEOUT_S)
        return self.call(send(), what)

    def places(self) -> dict:
        """name -> labgrid Place, as the coordinator has them now."""
        self.call(self.session.sync_with_coordinator(), "reading places")
        return dict(self.session.places)

    def reservations(self) -> list:
        found = self.rpc("GetReservations", self.pb2.GetReservationsRequest(), "reading reservations")
        return [self.common.Reservation.from_pb2(r) for r in found.reservations]

    def close(self) -> None:
        async def stop():
            if self.session is not None:
                await self.session.stop()
                await self.session.close()
        if self.loop.is_running():
            try:
                asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
            except Exception:  # going away anyway: a dead coordinator's channel may not close cleanly
                pass
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)


_COORDINATORS: dict[str, Coordinator] = {}
_HELD: dict[str, HeldPlace] = {}  # device name -> its place
_ADOPT: dict[str, str] = {}  # device name -> a place its run left acquired, to take over on resume
_LOCK = threading.RLock()


def coordinator(address: str) -> Coordinator:
    """The process's session with that coordinator: a new one where the last went away."""
    with _LOCK:
        found = _COORDINATORS.get(address)
        if found is None or not found.alive:
            if found is not None:
                found.close()
            found = _COORDINATORS[address] = Coordinator(address)
        return found


def describe_filter(tags: Mapping[str, str]) -> str:
    if set(tags) == {"name"}:
        return f"place {tags['name']}"
    kind = tags.get("kind")
    rest = ", ".join(f"{k}={v}" for k, v in tags.items() if k != "kind")
    return f"a free {kind or 'matching'} place" + (f" ({rest})" if rest else "")


def claim(device_name: str, address: str, tags: Mapping[str, str], *, cancel: threading.Event | None = None,
          progress: Callable[[str], None] | None = None) -> HeldPlace:
    """The place this device slot holds: the one it already holds, one its killed run left acquired
    (after `run --resume` said so), or a new one the coordinator allocates, waiting in its queue."""
    with _LOCK:
        held = _HELD.get(device_name)
        if held is not None:
            return held
    coord = coordinator(address)
    adopt = _ADOPT.pop(device_name, None)
    if adopt is not None:
        place = coord.places().get(adopt)
        if place is not None and place.acquired == coord.owner:
            return _hold(device_name, coord, adopt, adopted=True)
    name = _wait_for_allocation(coord, dict(tags), cancel, progress or (lambda text: None))
    return _hold(device_name, coord, name)


def _wait_for_allocation(coord: Coordinator, tags: dict, cancel, progress) -> str:
    pb2 = coord.pb2
    # the coordinator queues a reservation nothing can ever match as patiently as any other
    if not any(matches(name, place.tags, tags) for name, place in coord.places().items()):
        raise LabgridError(f"the coordinator at {coord.address} has no place matching "
                           f"{', '.join(f'{k}={v}' for k, v in tags.items())}: create it (labgrid-client "
                           f"-p NAME create, add-match, set-tags)")
    request = pb2.CreateReservationRequest(filters={"main": pb2.Reservation.Filter(filter=tags)}, prio=0.0)
    token = coord.rpc("CreateReservation", request, "reserving a place").reservation.token
    wanted = describe_filter(tags)
    try:
        while True:
            found = coord.common.Reservation.from_pb2(
                coord.rpc("PollReservation", pb2.PollReservationRequest(token=token), "polling the reservation")
                .reservation)
            state = found.state.name
            if state in ("expired", "invalid"):
                raise LabgridError(f"the coordinator at {coord.address} dropped the reservation for {wanted} "
                                   f"({state}); nothing matches it or it was not polled in time")
            if state in ("allocated", "acquired"):
                name = found.allocations["main"][0]
                try:
                    coord.rpc("AcquirePlace", pb2.AcquirePlaceRequest(placename=name), f"acquiring place {name}")
                    return name
                except LabgridError as error:
                    progress(f"waiting for {wanted}: {error}")
            else:
                holder = _holder(coord, tags)
                held_by = f", held by {holder}" if holder else ""
                progress(f"waiting for {wanted}: {_ahead(coord, found)} ahead{held_by}")
            if cancel is not None and cancel.wait(POLL_S):
                raise KeyboardInterrupt
            if cancel is None:
                time.sleep(POLL_S)
    finally:
        # once acquired, the place is ours without it; waiting or not, it must not outlive this call
        try:
            coord.rpc("CancelReservation", pb2.CancelReservationRequest(token=token), "cancelling the reservation")
        except TransportError:
            pass


def _ahead(coord: Coordinator, mine) -> int:
    """Waiting reservations for the same places made before this one."""
    return sum(1 for r in coord.reservations()
               if r.token != mine.token and r.state.name == "waiting" and r.filters.get("main") == mine.filters["main"]
               and r.created <= mine.created)


def _holder(coord: Coordinator, tags: Mapping[str, str]) -> str | None:
    """Who holds a named place, to say whom a wait is for."""
    if set(tags) != {"name"}:
        return None
    place = coord.session.places.get(tags["name"])
    return place.acquired if place is not None else None


def _hold(device_name: str, coord: Coordinator, name: str, adopted: bool = False) -> HeldPlace:
    try:
        lab, route = _route(coord, name)
    except BaseException:
        _release(coord, name)
        raise
    held = HeldPlace(place=name, lab=lab, coordinator=coord.address, route=route, adopted=adopted)
    with _LOCK:
        _HELD[device_name] = held
    return held


def _route(coord: Coordinator, name: str, acquired: bool = True) -> tuple[str, SshRoute]:
    """The place's NetworkService: its exporter (the lab), address, port, user and proxy command. Read from
    the resources it acquired, or (`acquired=False`, to see a host key) from those its matches name."""
    from labgrid.resource.networkservice import NetworkService
    from labgrid.util.proxy import proxymanager

    place = coord.places().get(name)
    if place is None:
        raise LabgridError(f"the coordinator at {coord.address} has no place {name}")
    if acquired:
        paths = place.acquired_resources
    else:
        paths = [(lab, group, entry.cls, resource) for lab, groups in coord.session.resources.items()
                 for group, entries in groups.items() for resource, entry in entries.items()
                 if place.hasmatch((lab, group, entry.cls, resource))]
    services = [path for path in paths if path[2] == "NetworkService"]
    if not services:
        raise LabgridError(f"place {name} has no NetworkService resource: add one (address, port, username) to "
                           f"its exporter's YAML and a match for it to the place")
    lab, group, _cls, resource = services[0]
    entry = coord.session.resources[lab][group][resource]
    args = entry.args
    service = NetworkService(None, None, address=str(args["address"]), username=str(args["username"]),
                             port=int(args.get("port", 22)))
    service.extra = entry.extra
    try:
        command = proxymanager.get_command(service, service.address, service.port)
    except Exception as exc:  # labgrid's ExecutionError and ssh's own failures
        raise Unreachable(f"place {name} (lab {lab}) is reached through its lab host "
                          f"{entry.extra.get('proxy')!r}, but labgrid's SSH tunnel to it failed: "
                          f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from exc
    return lab, SshRoute(service.address, service.port, service.username,
                         " ".join(command) if command else None)


def route_of(address: str, place: str) -> SshRoute:
    """Where a place's device is, without acquiring it: for `devices trust`, which only reads a host key."""
    return _route(coordinator(address), place, acquired=False)[1]


def held(device_name: str) -> HeldPlace | None:
    with _LOCK:
        return _HELD.get(device_name)


def check_held(device_name: str) -> None:
    """Raise CoordinatorGone when this device's place can no longer be vouched for."""
    found = held(device_name)
    if found is None:
        return
    coord = _COORDINATORS.get(found.coordinator)
    if coord is None or not coord.alive:
        raise CoordinatorGone(f"the labgrid coordinator at {found.coordinator} went away mid-run, so place "
                              f"{found.place} is no longer held: the cell was not run (`edgebench run --resume` "
                              f"finishes it once the coordinator is back)")


def let_go(device_name: str) -> None:
    """Release the device's place, if it holds one."""
    with _LOCK:
        found = _HELD.pop(device_name, None)
    if found is not None:
        coord = _COORDINATORS.get(found.coordinator)
        if coord is not None and coord.alive:
            _release(coord, found.place)


def _release(coord: Coordinator, name: str) -> None:
    try:
        coord.rpc("ReleasePlace", coord.pb2.ReleasePlaceRequest(placename=name, fromuser=coord.owner),
                  f"releasing place {name}")
    except TransportError:
        pass  # the coordinator is gone: it forgets every acquisition when it restarts


def release_mine(address: str, tags: Mapping[str, str]) -> list[tuple[str, str]]:
    """Release the places matching `tags` (a name or tag filter) that this user holds; (place, lab) each."""
    coord = coordinator(address)
    released = []
    for name, place in sorted(coord.places().items()):
        if place.acquired != coord.owner or not matches(name, place.tags, tags):
            continue
        labs = sorted({path[0] for path in place.acquired_resources})
        _release(coord, name)
        released.append((name, ", ".join(labs)))
    return released


def matches(name: str, place_tags: Mapping[str, str], tags: Mapping[str, str]) -> bool:
    """The coordinator's own rule: every tag of the filter, where `name` is the place's name."""
    have = {**place_tags, "name": name}
    return all(have.get(k) == v for k, v in tags.items())


def plan_resume(device_name: str, address: str, place: str, needed: bool) -> str | None:
    """What a resumed run does with a place its killed run may have left acquired: take it over for
    the cells still to run, or release it; a sentence saying which (None when it is not held)."""
    coord = coordinator(address)
    found = coord.places().get(place)
    if found is None or found.acquired != coord.owner:
        return None
    if needed:
        with _LOCK:
            _ADOPT[device_name] = place
        return f"{device_name}: reusing place {place}, still acquired by the stopped run"
    _release(coord, place)
    return f"{device_name}: released place {place}, which the stopped run left acquired and no cell needs"


@atexit.register
def _release_all() -> None:
    """A controller that ends by an exception (or Ctrl-C between cells) lets its places go."""
    for name in list(_HELD):
        let_go(name)
    for coord in list(_COORDINATORS.values()):
        coord.close()
