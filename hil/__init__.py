"""Hardware-in-the-loop: one test runs on real radios or on virtual ones behind a simulated RF medium.

- `medium`: the simulated LoRa channel (airtime, path loss, sensitivity, collisions with
  capture, half duplex, loss), pure and deterministic by seed; shared by the virtual
  radios (real time) and the field simulator (virtual time).
- `flooding`: Meshtastic-style managed flooding (dedupe, hop limit, SNR-weighted relay
  delay, cancellation), pure.
- Virtual devices (the Meshtastic device, the AT/E22 modem) speak a real radio's UART
  protocol on a pseudo-terminal and put their packets on the medium.
- `hardware_map`: which real radios are attached; the pytest plugin parametrizes `hil`
  tests over real and virtual radios and skips absent hardware with a reason.
"""
