"""Hardware-in-the-loop: one test runs on real radios or on virtual ones behind a simulated RF medium.

- Virtual devices (the Meshtastic board: `meshtastic_device`, its `txqueue`, `reliable`
  want-ack and `meshtastic_settings`; the AT/E22 modem: `modem_device`) speak a real
  radio's UART protocol on a pseudo-terminal (`pty`) and put their packets on the
  simulated channel of `hil.sim.medium`, in real time (`rig`).
- `hardware_map`: which real radios are attached; `testbench` opens N ports on a
  virtual rig or on mapped hardware; the pytest `plugin` parametrizes `hil` tests over
  real and virtual radios and skips absent hardware with a reason.
- `sim`: the field simulator (virtual time), its channel and flooding models.
"""
