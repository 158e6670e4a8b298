"""The node runtime: what runs around the consensus core on a device, written once.

- `runtime`: `NodeRuntime`, sans-IO: core, link layer, transmit queue, store, the
  device's own transactions and the commands it executes. The field simulator drives it
  in virtual time; `blockiot node` in real time.
- `transmit`: the priority transmit queue within the airtime budget.
- `realtime`: the adapter that runs a `NodeRuntime` on a radio driver and the wall clock,
  with the control socket (`control`) and actuator hooks (`actuator`).
"""
