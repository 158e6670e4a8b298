"""BlockIoT radio layer: a pure (sans-IO) link layer over LoRa, and thin drivers below it.

Pure modules (bytes and `now` in, bytes and events out; no clock, port or thread):
- `errors`: the project's root error `BlockIoTError`; `RadioError` and its typed subclasses.
- `codec`: the construct boundary (`decoding`, `encoding`) every wire format of the project
  goes through; radio holds it and the root error as the lowest package (chain and hil
  import radio, radio imports neither).
- `airtime`: LoRa time on air (Semtech AN1200.13), Meshtastic presets and packet overhead.
- `dutycycle`: the regulatory airtime budget (EU868 sub-band duty cycles, US915 dwell).
- `streamframe`: the one start-bytes + length deframer every serial transport uses.
- `linkframe`: the link frame wire format (construct, declared once).
- `link`: fragmentation, reassembly, CRC-32C, duplicate suppression and repair.

Adapters: `port` (joins a driver, a `Link` and the budget), `drivers` (Meshtastic, UART
LoRa modems) and `discovery` (attached radios).
"""
