"""The ledger: device identities, cluster genesis, wire formats, ledger state and its crash-safe store.

Pure logic: nothing here reads a clock, opens a port or starts a thread.
"""
