"""ipvsd's own topology annotations on a Service, parsed and checked.

- `ipvsd.io/topology-mode: exclude | weight`. `exclude` (the default) is kube-proxy: endpoints
  outside the preferred topology get no traffic. `weight` keeps every usable endpoint as a real
  server and weights it by how close it is to this node, so local backends take most traffic
  and remote ones absorb the overflow and keep the Service alive when local ones fail.
- `ipvsd.io/topology-weights: "node=100,zone=10,other=1"` (those are the defaults): the weights
  of an endpoint on this node, in this node's zone, and anywhere else. Each 1..65535 (0 would
  quiesce the endpoint: that is what `exclude` is for); omitted levels keep their default.
- `ipvsd.io/topology-keys: "kubernetes.io/hostname,topology.kubernetes.io/zone,*"`: the
  `topologyKeys` of the seed documents, in order: the first key for which some usable endpoint
  has this node's value wins; `*` (only last) means any endpoint; no match means no real
  servers. At most 16 keys, each a label key.

An invalid annotation never breaks the Service: it is ignored (defaults apply), and a warning
is returned for the log and a Warning Event.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from ipvsd.model.service import Service

TOPOLOGY_MODE = "ipvsd.io/topology-mode"
TOPOLOGY_WEIGHTS = "ipvsd.io/topology-weights"
TOPOLOGY_KEYS = "ipvsd.io/topology-keys"

MAX_TOPOLOGY_KEYS = 16  # as the API's old spec.topologyKeys
MAX_TOPOLOGY_WEIGHT = 65535
ANY_KEY = "*"

# A qualified label key: optional DNS-subdomain prefix and '/', then a 1-63 character name.
_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_PREFIX = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
_LABEL_KEY = re.compile(rf"({_PREFIX}/)?{_NAME}")


class TopologyHandling(enum.Enum):
    """What ipvsd does with endpoints outside the preferred topology (`topology-mode`)."""

    EXCLUDE = "exclude"
    WEIGHT = "weight"


class Proximity(enum.Enum):
    """How close an endpoint is to this node."""

    NODE = "node"
    ZONE = "zone"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class TopologyWeights:
    node: int = 100
    zone: int = 10
    other: int = 1

    def of(self, proximity: Proximity) -> int:
        if proximity is Proximity.NODE:
            return self.node
        if proximity is Proximity.ZONE:
            return self.zone
        return self.other

    def __str__(self) -> str:
        return f"node={self.node},zone={self.zone},other={self.other}"


@dataclass(frozen=True, slots=True)
class TopologyPolicy:
    """A Service's topology settings from its annotations; `keys` empty means not set."""

    mode: TopologyHandling = TopologyHandling.EXCLUDE
    weights: TopologyWeights = TopologyWeights()
    keys: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


DEFAULT_POLICY = TopologyPolicy()


def topology_policy(service: Service) -> TopologyPolicy:
    """The topology settings of `service` (never raises; bad values become warnings)."""
    mode_text = service.annotation(TOPOLOGY_MODE)
    weights_text = service.annotation(TOPOLOGY_WEIGHTS)
    keys_text = service.annotation(TOPOLOGY_KEYS)
    if mode_text is None and weights_text is None and keys_text is None:
        return DEFAULT_POLICY  # the common case, without allocating
    warnings: list[str] = []
    mode = _mode(mode_text, warnings)
    weights = _weights(weights_text, warnings)
    keys = _keys(keys_text, warnings)
    return TopologyPolicy(mode, weights, keys, tuple(warnings))


def _mode(text: str | None, warnings: list[str]) -> TopologyHandling:
    if text is None:
        return TopologyHandling.EXCLUDE
    value = text.strip().lower()
    for mode in TopologyHandling:
        if value == mode.value:
            return mode
    warnings.append(
        f"annotation {TOPOLOGY_MODE}={text!r}: not 'exclude' or 'weight'; using 'exclude'"
    )
    return TopologyHandling.EXCLUDE


def _weights(text: str | None, warnings: list[str]) -> TopologyWeights:
    default = TopologyWeights()
    if text is None:
        return default
    values = {"node": default.node, "zone": default.zone, "other": default.other}
    seen: set[str] = set()
    for item in filter(None, (part.strip() for part in text.split(","))):
        level, equals, number = (piece.strip() for piece in item.partition("="))
        problem = None
        if not equals or level not in values:
            problem = f"{item!r} is not node=N, zone=N or other=N"
        elif level in seen:
            problem = f"{level!r} is given twice"
        elif not number.isdigit() or not 1 <= int(number) <= MAX_TOPOLOGY_WEIGHT:
            problem = f"weight {number!r} for {level} is not 1..{MAX_TOPOLOGY_WEIGHT}"
        if problem is not None:
            warnings.append(
                f"annotation {TOPOLOGY_WEIGHTS}={text!r}: {problem}; using the defaults {default}"
            )
            return default
        seen.add(level)
        values[level] = int(number)
    return TopologyWeights(**values)


def _keys(text: str | None, warnings: list[str]) -> tuple[str, ...]:
    if text is None:
        return ()
    keys = tuple(part.strip() for part in text.split(","))
    problem = None
    if not any(keys):
        problem = "no keys given"
    elif len(keys) > MAX_TOPOLOGY_KEYS:
        problem = f"{len(keys)} keys; at most {MAX_TOPOLOGY_KEYS} are allowed"
    elif len(set(keys)) != len(keys):
        problem = "a key is given twice"
    else:
        for index, key in enumerate(keys):
            if key == ANY_KEY:
                if index != len(keys) - 1:
                    problem = "'*' may only be the last key"
                    break
            elif not _is_label_key(key):
                problem = f"{key!r} is not a label key"
                break
    if problem is not None:
        warnings.append(f"annotation {TOPOLOGY_KEYS}={text!r}: {problem}; ignored")
        return ()
    return keys


def _is_label_key(key: str) -> bool:
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or len(prefix) > 253):
        return False
    return len(name) <= 63 and _LABEL_KEY.fullmatch(key) is not None
