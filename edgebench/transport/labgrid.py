"""A device in a lab, shared through labgrid's coordinator: an SSH device whose address is a place's.

The profile names the coordinator (`coordinator: host:port`, else $LG_COORDINATOR) and a place
(`place: rpi4-01`) or a reservation filter (`select: {kind: sbc}`, with `count:` places). The
place's NetworkService resource gives the address, port and user; an isolated lab's is reached
through labgrid's own tunnel command. Everything else is the SSH transport's, trust included: the
device's host key is checked against known_hosts under the address labgrid gives, and an unknown
key is refused as for any SSH device (`edgebench devices trust NAME` records it).
"""

from __future__ import annotations

from pathlib import Path

from edgebench.transport import labgrid_place
from edgebench.transport.declaration import WORD, TransportDeclaration, TransportSetting
from edgebench.transport.ssh import DECLARATION as SSH
from edgebench.transport.ssh import SshTransport

# labgrid's own rules for tags (labgrid.remote.common.TAG_KEY); a value is one word
TAG_KEY = (r"[a-z][a-z0-9_]+", "a labgrid tag name is a lowercase letter, then lowercase letters, digits or '_'")
TAG_VALUE = (r"\S+", "a tag value is one word")


def _one_place_or_filter(device):
    if (device.place is None) == (device.select is None):
        return "transport", "transport labgrid needs either `place: NAME` or `select: {tag: value, ...}`, not both"
    if device.count != 1 and device.select is None:
        return "count", "`count` is for `select:` devices; a `place:` is one place"
    return None


DECLARATION = TransportDeclaration(
    "labgrid", "a place shared through labgrid's coordinator, reached over SSH at its NetworkService's address",
    settings=(
        TransportSetting("coordinator", str, None, "the coordinator, host:port; default: $LG_COORDINATOR",
                         pattern=(r"[^\s/-][^\s/]*", "must be host:port (or host, for port 20408)")),
        TransportSetting("place", str, None, "one place, by name", pattern=WORD),
        TransportSetting("select", dict, None, "a reservation filter: the tags a place must have",
                         items=(TAG_KEY, TAG_VALUE)),
        TransportSetting("count", int, 1, "how many places a `select:` device stands for in a fleet",
                         between=(1, 4096)),
        # the only SSH setting a place's NetworkService (address, port, username) does not give
        SSH.setting("identity"),
    ),
    needs_one_of=("place", "select"), needs="`place: NAME` or `select: {tag: value, ...}`",
    address=("place", "select"), check=_one_place_or_filter, fleet_size="count",
)


def place_filter(device) -> dict[str, str]:
    """The reservation filter: the tags, or the place's name (the coordinator matches `name` too)."""
    return dict(device.select) if device.select else {"name": device.place}


def target_of(device, held: labgrid_place.HeldPlace):
    from edgebench.transport.sshconn import SshTarget

    route = held.route
    return SshTarget(name=device.name, host=route.address, port=route.port, user=route.user,
                     identities=(str(Path(device.identity).expanduser()),) if device.identity else (),
                     proxy_jump=None, proxy_command=route.proxy_command)


class LabgridTransport(SshTransport):
    name = "labgrid"

    def __init__(self, device):
        self._owns_place = labgrid_place.held(device.name) is None
        # a command run outside a fleet run (`devices check`, `push`) holds the place for its own life
        held = self.claim_place(device)
        try:
            super().__init__(device)
        except BaseException:
            if self._owns_place:
                labgrid_place.let_go(device.name)
            raise
        self.place = held

    def _resolve(self, device):
        return target_of(device, labgrid_place.held(device.name))

    @staticmethod
    def claim_place(device, cancel=None, progress=None) -> labgrid_place.HeldPlace:
        return labgrid_place.claim(device.name, labgrid_place.coordinator_address(device.coordinator),
                                   place_filter(device), cancel=cancel, progress=progress)

    @classmethod
    def claim(cls, device, cancel, progress):
        held = cls.claim_place(device, cancel, progress)
        return {"place": held.place, "lab": held.lab, "coordinator": held.coordinator}

    @classmethod
    def let_go(cls, device) -> None:
        labgrid_place.let_go(device.name)

    @classmethod
    def settle_claim(cls, device, where, needed):
        return labgrid_place.plan_resume(device.name, where["coordinator"], where["place"], needed)

    def start(self, argv):
        # every runner start (a cell, the lock, the store) first asks: is the place still ours?
        labgrid_place.check_held(self.device.name)
        return super().start(argv)

    def close(self) -> None:
        super().close()
        if self._owns_place:
            labgrid_place.let_go(self.device.name)


TRANSPORT = LabgridTransport
