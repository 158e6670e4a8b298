"""`blockiot bench radio`: how well the link layer uses the air, per radio personality.

Figures (per personality, and the Meshtastic/LongFast ones again at the top level):

* `link_efficiency_2k`: payload bytes / bytes our stack puts on air for one 2 KiB
  message: the link frames (headers, CRC) plus, on the UART modem, our stream
  framing and source id. Meshtastic's own header and protobuf, and the E22
  module's header, are not ours and are excluded (they are in `bytes_on_air_2k_total`).
* `goodput_vs_airtime_bound`: payload bytes per simulated second from `send_message`
  until the message is delivered on a two-radio virtual rig (VirtualRig, ptys,
  simulated medium), divided by the bound the airtime formula gives for the same
  frames: payload / (sum of their time on air, every header included). 1.0 would
  mean back-to-back packets with no host, pacing or turnaround cost.

Times are simulated seconds (the rig runs faster than real time); the run needs the
HIL bench builder (hil/testbench.py), the same one the pytest plugin uses.
"""
from __future__ import annotations

import argparse
import random
import time

from blockiot.radio.airtime import meshtastic_packet_len
from blockiot.radio.drivers.e22 import E22, transport_overhead
from blockiot.radio.link import Link
from blockiot.tools.bench import add_benchmark, machine, print_figures
from blockiot.tools.options import positive_float, positive_int

MESSAGE_SIZE = 2048
DEFAULT_TIME_SCALE = 0.2
PERSONALITIES = ("meshtastic", "modem")


def register(bench_subparsers: argparse._SubParsersAction) -> None:
    parser = add_benchmark(
        bench_subparsers, "radio",
        help="link efficiency and goodput vs the airtime bound, on virtual radios",
        description="Send a 2 KiB message between two virtual radios of each personality and "
                    "report link efficiency and goodput against the airtime bound.",
        run=run,
    )
    parser.add_argument("--size", type=positive_int, default=MESSAGE_SIZE, help="message size in bytes (default 2048)")
    parser.add_argument("--time-scale", type=positive_float, default=DEFAULT_TIME_SCALE,
                        help="wall seconds per simulated second on the virtual rig (default "
                             f"{DEFAULT_TIME_SCALE}; much lower and host-side fixed delays, such as "
                             "the meshtastic library's 0.1 s sleep after each write, dominate)")


def message(size: int) -> bytes:
    return bytes((index * 131 + 7) % 256 for index in range(size))


def our_overhead(personality: str) -> int:
    """Bytes our stack adds around each link frame below the link layer."""
    return transport_overhead() if personality == "modem" else 0


def foreign_overhead(personality: str, frame_len: int) -> int:
    """Bytes the radio adds that are not ours (Meshtastic header + protobuf, E22 module header)."""
    if personality == "modem":
        return E22.MODULE_HEADER_LEN
    return meshtastic_packet_len(frame_len) - frame_len


def measure(personality: str, size: int, time_scale: float) -> dict:
    from blockiot.hil.testbench import RadioKind, open_bench

    payload = message(size)
    bench = open_bench(RadioKind(f"virtual-{personality}", personality, True), 2, time_scale=time_scale)
    try:
        sender, receiver = bench.ports
        frames = Link(sender.driver.mtu, rng=random.Random(0)).send(payload, 0.0)  # only counts frames
        ours = sum(len(frame) + our_overhead(personality) for frame in frames)
        total = sum(len(frame) + our_overhead(personality) + foreign_overhead(personality, len(frame))
                    for frame in frames)
        airtime = sum(sender.driver.airtime(len(frame)) for frame in frames)
        started = sender.clock()
        wall_started = time.monotonic()
        sender.send_message(payload)
        got = receiver.receive_message(timeout=50 * airtime + 60)
        elapsed = receiver.clock() - started
        wall = time.monotonic() - wall_started
    finally:
        bench.close()
    if got is None or got[1] != payload:
        raise RuntimeError(f"virtual {personality} link did not deliver the {size} B message")
    goodput = size / elapsed
    bound = size / airtime
    return {
        "mtu": sender.driver.mtu,
        "frames": len(frames),
        "bytes_on_air_ours": ours,
        "bytes_on_air_2k_total": total,
        "link_efficiency_2k": round(size / ours, 4),
        "airtime_s": round(airtime, 3),
        "elapsed_sim_s": round(elapsed, 3),
        "elapsed_wall_s": round(wall, 3),
        "goodput_Bps": round(goodput, 2),
        "airtime_bound_Bps": round(bound, 2),
        "goodput_vs_airtime_bound": round(goodput / bound, 4),
    }


def run(args: argparse.Namespace) -> int:
    figures = {name: measure(name, args.size, args.time_scale) for name in PERSONALITIES}
    result = {
        "message_bytes": args.size,
        "link_efficiency_2k": figures["meshtastic"]["link_efficiency_2k"],
        "goodput_vs_airtime_bound": figures["meshtastic"]["goodput_vs_airtime_bound"],
        **figures,
        "machine": machine(),
    }
    return print_figures(result, args.json)
