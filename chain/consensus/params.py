"""Consensus parameters of a cluster: slot arithmetic, round-robin leaders, quorum sizes
and the node's tunables (docs/PROTOCOL.md §2, §6, §13)."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import ChainError
from ..genesis import Genesis

FINALITY_RULES = ("quorum", "obft")
# Share of a node's airtime budget that answering others' (unsigned) requests may take:
# runtimes turn it into `answer_bytes_per_slot` with their radio's airtime.
ANSWER_SHARE = 0.1


class ConsensusConfigError(ChainError):
    """Consensus parameters that cannot work (no validators, negative times, unknown rule)."""


@dataclass(frozen=True)
class ConsensusParams:
    """What every node of a cluster must agree on (from the genesis) plus local tunables.

    `drift_s` None means the default `slot_seconds / 6`; `request_timeout_s` None means
    `slot_seconds / 2`. `hop_latency_s` is the nominal time one flood hop takes (airtime
    plus relay contention), used to turn a block's arrival into a clock sample.
    `tx_settle_s` (None: 6 hop latencies) is how long a leader lets a transaction's flood
    run before it puts it in a block, so that the receivers hold it already.
    `answer_bytes_per_slot` (None: one frame) is what answering others' requests may cost
    per slot on average: the requests are not signed, so anyone can ask.
    `frame_bytes` is the largest message that goes as one radio frame (Meshtastic's 231 B
    payload less the link layer's 2 B header): a block message never exceeds it, and holds
    whole transactions in the room its short ids leave.
    """

    genesis_time: float
    slot_seconds: float
    validators: tuple[int, ...]
    finality: str = "quorum"
    drift_s: float | None = None
    hop_latency_s: float = 1.5
    tx_settle_s: float | None = None
    max_block_txs: int = 23
    frame_bytes: int = 229
    sync_batch_bytes: int = 1800
    answer_bytes_per_slot: int | None = None
    request_timeout_s: float | None = None
    max_request_tries: int = 4
    max_orphans: int = 64
    mempool_size: int = 512
    seen_size: int = 4096
    _leaders: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.validators:
            raise ConsensusConfigError("a cluster needs at least one validator")
        if not self.slot_seconds > 0:
            raise ConsensusConfigError(f"slot_seconds must be positive, not {self.slot_seconds}")
        if self.finality not in FINALITY_RULES:
            raise ConsensusConfigError(f"finality rule must be one of {', '.join(FINALITY_RULES)}, not {self.finality!r}")
        for name in ("drift_s", "request_timeout_s"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ConsensusConfigError(f"{name} must be positive, not {value}")
        for name in ("hop_latency_s", "tx_settle_s"):
            value = getattr(self, name)
            if value is not None and not value >= 0:
                raise ConsensusConfigError(f"{name} must be >= 0, not {value}")
        if self.answer_bytes_per_slot is not None and self.answer_bytes_per_slot < 1:
            raise ConsensusConfigError(f"answer_bytes_per_slot must be >= 1, not {self.answer_bytes_per_slot}")
        for name in ("max_block_txs", "frame_bytes", "sync_batch_bytes", "max_request_tries", "max_orphans", "mempool_size", "seen_size"):
            if getattr(self, name) < 1:
                raise ConsensusConfigError(f"{name} must be >= 1, not {getattr(self, name)}")
        object.__setattr__(self, "_leaders", tuple(self.validators))

    @classmethod
    def from_genesis(cls, genesis: Genesis, **tunables) -> "ConsensusParams":
        """The cluster's parameters from its genesis; keyword arguments set local tunables."""
        return cls(float(genesis.genesis_time), float(genesis.params.slot_seconds), tuple(genesis.validators), **tunables)

    # --- quorum arithmetic -----------------------------------------------------------

    @property
    def n(self) -> int:
        return len(self._leaders)

    @property
    def f(self) -> int:
        """Byzantine validators tolerated: floor((n - 1) / 3)."""
        return (self.n - 1) // 3

    @property
    def q(self) -> int:
        """Quorum: n - f distinct validators (2f + 1 when n = 3f + 1)."""
        return self.n - self.f

    @property
    def obft_k(self) -> int:
        """Ouroboros-BFT settlement depth in slots: 3t + 1 with t = f."""
        return 3 * self.f + 1

    @property
    def drift(self) -> float:
        return self.slot_seconds / 6 if self.drift_s is None else self.drift_s

    @property
    def tx_settle(self) -> float:
        return 6 * self.hop_latency_s if self.tx_settle_s is None else self.tx_settle_s

    @property
    def answer_bytes(self) -> int:
        """Bytes per slot this node spends answering others' requests, on average (default:
        one frame); bursts up to `sync_batch_bytes`."""
        return self.frame_bytes if self.answer_bytes_per_slot is None else self.answer_bytes_per_slot

    @property
    def request_timeout(self) -> float:
        return self.slot_seconds / 2 if self.request_timeout_s is None else self.request_timeout_s

    # --- slots -------------------------------------------------------------------------

    def slot_at(self, t: float) -> int:
        """The slot holding slot-clock time `t` (negative before genesis)."""
        return int((t - self.genesis_time) // self.slot_seconds)

    def slot_start(self, slot: int) -> float:
        return self.genesis_time + slot * self.slot_seconds

    def leader(self, slot: int) -> int:
        """Registry index of the validator leading `slot`."""
        return self._leaders[slot % self.n]
