"""Consensus over the mesh, pure: slot clock, block tree with fork choice and finality,
compact-block relay, catch-up sync and equivocation evidence, driven by `NodeCore`.

Nothing here reads a clock, sleeps, opens a port or starts a thread: `NodeCore` takes
(time, message) in and returns (messages to send, blocks to persist, events) out. The
rules it follows are written in docs/PROTOCOL.md.
"""
