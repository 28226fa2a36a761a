"""ipvsadm's save format (`ipvsadm -Sn`): the IPVS table as text, written and read back.

ipvsd prints its `--dry-run` plan in this format, golden tests diff tables in it, and the shared
contract suite holds the in-memory fake to the kernel through it: the kernel run reads the table
with the real `ipvsadm -Sn`, the fake renders its own with `render_rules`, and `canonical_rules`
puts both in one order. So the text must be exactly what ipvsadm 1.31 (Debian 12) prints;
tests/unit/data/ipvsadm_sn_cases.txt holds real output, recorded on a 6.1 kernel, to test it.

What ipvsadm prints, quirks included (each seen on the real kernel):
- one `-A` line per virtual server followed by its `-a` lines; nothing at all for an empty table;
- service options in a fixed order: `-s`, then `-p TIMEOUT` and `-M MASK` for persistent
  services only (`-M` left out for the full mask), `--pe`, `-o`, `-b FLAGS`;
- scheduler flags by name: `sh-fallback,sh-port` for sh, `mh-fallback,mh-port` for mh and
  `flag-1,flag-2,flag-3` for every other scheduler; sh and mh have no name for flag 3, so a
  service with only that flag prints `-b ` with nothing after it;
- fwmarks as signed 32-bit numbers (mark 4294967295 prints as `-f -1`);
- real servers always with `-w`, never with their thresholds; tunnels with `--tun-type ipip`;
  direct routing and local forwarding both as `-g`, the bypass method as `(null)`;
- IPv6 addresses as glibc's inet_ntop writes them (`::ffff:10.0.0.1`, not `::ffff:a00:1`);
- ipvsadm sorts with an overflowing subtraction (it prints 200.0.0.1 before 10.0.0.1), so its
  order is not `ServiceKey.sort_key()`: compare tables with `canonical_rules`, never raw text.

The format is lossy (no thresholds, no timeout or netmask on non-persistent services, no way to
tell local forwarding from direct routing), so `parse_rules` reads back what ipvsadm shows, not
everything the kernel holds. This module decides nothing about which table to render and never
runs ipvsadm itself.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address

from ipvsd.model.ipvs import (
    NO_FLAGS,
    SCHEDULER_FLAG_NAMES,
    Family,
    Forward,
    IPAddress,
    ObservedVirtualServer,
    Protocol,
    RealServer,
    ServiceFlag,
    ServiceKey,
    VirtualServer,
    full_prefix,
    parse_address,
)

_PROTOCOL_OPTIONS = {Protocol.TCP: "-t", Protocol.UDP: "-u", Protocol.SCTP: "--sctp-service"}
_OPTION_PROTOCOLS = {option: protocol for protocol, option in _PROTOCOL_OPTIONS.items()}
_FORWARD_SWITCHES = {
    Forward.MASQ: "-m",
    Forward.TUNNEL: "-i",
    Forward.ROUTE: "-g",
    Forward.LOCAL: "-g",
    Forward.BYPASS: "(null)",  # ipvsadm has no switch for it and prints a null string
}
_SWITCH_FORWARDS = {
    "-m": Forward.MASQ,
    "-i": Forward.TUNNEL,
    "-g": Forward.ROUTE,
    "(null)": Forward.BYPASS,
}
_GENERIC_FLAG_NAMES = {
    "flag-1": ServiceFlag.SCHED1,
    "flag-2": ServiceFlag.SCHED2,
    "flag-3": ServiceFlag.SCHED3,
}
_SCHEDULER_FLAGS = ServiceFlag.SCHED1 | ServiceFlag.SCHED2 | ServiceFlag.SCHED3


@dataclass(frozen=True, slots=True)
class ServiceRules:
    """A virtual server and its real servers: what one `-A` line and its `-a` lines say."""

    server: VirtualServer
    real_servers: tuple[RealServer, ...] = ()


TableEntry = ObservedVirtualServer | ServiceRules


# --- writing ---------------------------------------------------------------------------------


def render_rules(table: Iterable[TableEntry]) -> str:
    """The table as `ipvsadm -Sn` prints it, in the order given (one line per object)."""
    return "".join(f"{line}\n" for line in rules_lines(table))


def rules_lines(table: Iterable[TableEntry]) -> list[str]:
    """`render_rules` as a list of lines without line ends."""
    lines: list[str] = []
    for entry in table:
        server, real_servers = _unpack(entry)
        lines.append(service_rule(server))
        lines.extend(real_server_rule(server.key, real) for real in real_servers)
    return lines


def service_rule(server: VirtualServer) -> str:
    """The `-A` line of one virtual server."""
    parts = ["-A", _service_spec(server.key), "-s", server.scheduler]
    if server.flags & ServiceFlag.PERSISTENT:
        parts += ["-p", str(server.timeout)]
        if server.effective_netmask != full_prefix(server.key.family):
            parts += ["-M", _format_netmask(server.key.family, server.effective_netmask)]
    if server.persistence_engine:
        parts += ["--pe", server.persistence_engine]
    if server.flags & ServiceFlag.ONEPACKET:
        parts.append("-o")
    if server.flags & _SCHEDULER_FLAGS:
        parts += ["-b", ",".join(scheduler_flag_names(server.scheduler, server.flags))]
    return " ".join(parts)


def real_server_rule(service: ServiceKey, server: RealServer) -> str:
    """The `-a` line of one real server of `service`."""
    endpoint = _format_endpoint(server.address, server.port)
    rule = (
        f"-a {_service_spec(service)} -r {endpoint} "
        f"{_FORWARD_SWITCHES[server.forward]} -w {server.weight}"
    )
    if server.forward == Forward.TUNNEL:
        rule += " --tun-type ipip"  # the model has no GUE tunnels; ipip is the kernel's default
    return rule


def scheduler_flag_names(scheduler: str, flags: ServiceFlag) -> list[str]:
    """The names ipvsadm prints for the scheduler flags in `flags` (some flags have none)."""
    names = SCHEDULER_FLAG_NAMES.get(scheduler, _GENERIC_FLAG_NAMES)
    return [name for name, flag in names.items() if flags & flag]


def _unpack(entry: TableEntry) -> tuple[VirtualServer, Iterable[RealServer]]:
    if isinstance(entry, ObservedVirtualServer):
        return entry.server, (observed.server for observed in entry.real_servers)
    return entry.server, entry.real_servers


def _service_spec(key: ServiceKey) -> str:
    if key.fwmark:
        mark = key.fwmark - 2**32 if key.fwmark >= 2**31 else key.fwmark  # ipvsadm's "%d"
        return f"-f {mark} -6" if key.family == Family.INET6 else f"-f {mark}"
    assert key.address is not None  # guaranteed by ServiceKey's validation
    return f"{_PROTOCOL_OPTIONS[Protocol(key.protocol)]} {_format_endpoint(key.address, key.port)}"


def _format_endpoint(address: IPAddress, port: int) -> str:
    if isinstance(address, IPv6Address):
        return f"[{inet_ntop6(address)}]:{port}"
    return f"{address}:{port}"


def inet_ntop6(address: IPv6Address) -> str:
    """An IPv6 address as glibc's inet_ntop writes it (and so ipvsadm prints it).

    Python agrees except for the addresses glibc writes with an embedded IPv4 address: IPv4-
    compatible (`::10.0.0.1`) and IPv4-mapped (`::ffff:10.0.0.1`) ones.
    """
    words = struct.unpack("!8H", address.packed)
    base, length = _longest_zero_run(words)
    if base == 0 and (length == 6 or (length == 5 and words[5] == 0xFFFF)):
        prefix = "::ffff:" if length == 5 else "::"
        return prefix + str(IPv4Address(address.packed[12:]))
    # Spelled out rather than str(address): Python >= 3.13 writes every IPv4-mapped address
    # with a dotted tail, glibc only the ones above.
    hextets = [f"{word:x}" for word in words]
    if length < 2:
        return ":".join(hextets)
    return ":".join(hextets[:base]) + "::" + ":".join(hextets[base + length :])


def _longest_zero_run(words: tuple[int, ...]) -> tuple[int, int]:
    """The first longest run of zero words as (start, length); (-1, 0) when there is none."""
    best = (-1, 0)
    start = -1
    for index, word in enumerate((*words, 1)):  # the sentinel closes a trailing run
        if word == 0:
            start = index if start < 0 else start
        elif start >= 0:
            if index - start > best[1]:
                best = (start, index - start)
            start = -1
    return best


def _format_netmask(family: Family, prefix: int) -> str:
    if family == Family.INET:
        return str(IPv4Network((0, prefix)).netmask)
    return str(prefix)


# --- reading ---------------------------------------------------------------------------------


def parse_rules(text: str) -> list[ServiceRules]:
    """The virtual servers and real servers of `ipvsadm -Sn` text, in the order of the text.

    What the format leaves out comes back as the model's defaults (thresholds 0, timeout 0 for
    a non-persistent service); netmasks come back explicit, as the kernel reports them; `-g`
    comes back as direct routing. Raises ValueError on a line ipvsadm would not print.
    """
    services: dict[ServiceKey, VirtualServer] = {}
    real_servers: dict[ServiceKey, list[RealServer]] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        tokens = _Tokens(line)
        command = tokens.take()
        if command == "-A":
            server = _parse_service(tokens)
            if server.key in services:
                raise ValueError(f"service defined twice: {line!r}")
            services[server.key] = server
            real_servers[server.key] = []
        elif command == "-a":
            key, real = _parse_real_server(tokens)
            if key not in services:
                raise ValueError(f"real server of an undefined service: {line!r}")
            real_servers[key].append(real)
        else:
            raise ValueError(f"not an ipvsadm rule: {line!r}")
    return [ServiceRules(server, tuple(real_servers[key])) for key, server in services.items()]


def canonical_rules(text: str) -> list[str]:
    """The lines of `ipvsadm -Sn` text in ipvsd's order, each kept verbatim.

    Services by `ServiceKey.sort_key()`, each followed by its real servers by
    `RealServer.sort_key()` (the order of `Ipvs.dump()`), so two tables compare equal exactly
    when they hold the same rules, whatever order ipvsadm or the kernel printed them in.
    """
    services: dict[ServiceKey, str] = {}
    real_servers: dict[ServiceKey, list[tuple[tuple[int, bytes, int], str]]] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        tokens = _Tokens(line)
        command = tokens.take()
        key = _parse_service_spec(tokens)
        if command == "-A":
            if key in services:
                raise ValueError(f"service defined twice: {line!r}")
            services[key] = line
        elif command == "-a":
            tokens.expect("-r")
            address, port = _parse_endpoint(tokens.take())
            real_servers.setdefault(key, []).append(((address.version, address.packed, port), line))
        else:
            raise ValueError(f"not an ipvsadm rule: {line!r}")
    if orphans := real_servers.keys() - services.keys():
        raise ValueError(f"real servers of undefined services: {sorted(map(str, orphans))}")
    lines: list[str] = []
    for key in sorted(services, key=ServiceKey.sort_key):
        lines.append(services[key])
        lines.extend(line for _, line in sorted(real_servers.get(key, [])))
    return lines


class _Tokens:
    """The words of one rule line, consumed from the left."""

    def __init__(self, line: str) -> None:
        self.line = line
        self._words: Iterator[str] = iter(line.split())
        self._next: str | None = next(self._words, None)

    def peek(self) -> str | None:
        return self._next

    def take(self) -> str:
        if self._next is None:
            raise ValueError(f"rule ends too early: {self.line!r}")
        word, self._next = self._next, next(self._words, None)
        return word

    def expect(self, word: str) -> None:
        if (found := self.take()) != word:
            raise ValueError(f"expected {word} but found {found} in {self.line!r}")

    def number(self) -> int:
        word = self.take()
        try:
            return int(word)
        except ValueError:
            raise ValueError(f"not a number: {word!r} in {self.line!r}") from None


def _parse_service_spec(tokens: _Tokens) -> ServiceKey:
    option = tokens.take()
    if option in _OPTION_PROTOCOLS:
        address, port = _parse_endpoint(tokens.take())
        return ServiceKey.for_protocol(_OPTION_PROTOCOLS[option], address, port)
    if option == "-f":
        mark = tokens.number() % 2**32  # undo ipvsadm's signed printing
        if tokens.peek() == "-6":
            tokens.take()
            return ServiceKey.for_fwmark(mark, Family.INET6)
        return ServiceKey.for_fwmark(mark)
    raise ValueError(f"no service in {tokens.line!r}")


def _parse_endpoint(text: str) -> tuple[IPAddress, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"not an address:port: {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return parse_address(host), int(port)


def _parse_service(tokens: _Tokens) -> VirtualServer:
    key = _parse_service_spec(tokens)
    tokens.expect("-s")
    scheduler = tokens.take()
    flags, timeout, netmask, engine = NO_FLAGS, 0, full_prefix(key.family), ""
    while (option := tokens.peek()) is not None:
        tokens.take()
        if option == "-p":
            flags |= ServiceFlag.PERSISTENT
            timeout = tokens.number()
        elif option == "-M":
            netmask = _parse_netmask(key.family, tokens.take())
        elif option == "--pe":
            engine = tokens.take()
        elif option == "-o":
            flags |= ServiceFlag.ONEPACKET
        elif option == "-b":
            names = tokens.take() if tokens.peek() is not None else ""
            flags |= _parse_scheduler_flags(scheduler, names, tokens.line)
        else:
            raise ValueError(f"unknown service option {option} in {tokens.line!r}")
    return VirtualServer(key, scheduler, flags, timeout, netmask, engine)


def _parse_netmask(family: Family, text: str) -> int:
    if family == Family.INET6:
        return int(text)
    try:
        return IPv4Network(f"0.0.0.0/{text}").prefixlen
    except ValueError:
        raise ValueError(f"not a contiguous IPv4 netmask: {text!r}") from None


def _parse_scheduler_flags(scheduler: str, names: str, line: str) -> ServiceFlag:
    known = SCHEDULER_FLAG_NAMES.get(scheduler, _GENERIC_FLAG_NAMES)
    if not names:
        # ipvsadm prints `-b` without names only for the one flag it cannot name (sh, mh).
        return ServiceFlag.SCHED3
    flags = NO_FLAGS
    for name in names.split(","):
        if name not in known:
            raise ValueError(f"unknown flag {name} for scheduler {scheduler} in {line!r}")
        flags |= known[name]
    return flags


def _parse_real_server(tokens: _Tokens) -> tuple[ServiceKey, RealServer]:
    key = _parse_service_spec(tokens)
    tokens.expect("-r")
    address, port = _parse_endpoint(tokens.take())
    switch = tokens.take()
    if switch not in _SWITCH_FORWARDS:
        raise ValueError(f"unknown forwarding {switch} in {tokens.line!r}")
    tokens.expect("-w")
    weight = tokens.number()
    forward = _SWITCH_FORWARDS[switch]
    if forward == Forward.TUNNEL:
        tokens.expect("--tun-type")
        if (tunnel := tokens.take()) != "ipip":
            raise ValueError(f"tunnel type {tunnel} is not supported: {tokens.line!r}")
    if tokens.peek() is not None:
        raise ValueError(f"unexpected {tokens.peek()} in {tokens.line!r}")
    return key, RealServer(address, port, weight, forward=forward)
