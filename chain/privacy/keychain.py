"""A node's private keys: its device key and one keyring per group it belongs to.

Everything a keychain holds can be rebuilt from the chain and the node's identity (each
rotation wraps the group key to this member), so no key ever needs to reach the store.
"""
from __future__ import annotations

from .errors import NotRecipient
from .keys import DeviceKey, TxOrigin
from .rotation import KeyRotation, open_rotation
from .sealing import DEFAULT_KEEP, GroupKeyring, Scope, decode_envelope, open_from_device


class Keychain:
    def __init__(self, device: DeviceKey, member: int, keep: int = DEFAULT_KEEP):
        self.device = device
        self.member = member
        self.keep = keep
        self._keyrings: dict[int, GroupKeyring] = {}

    def __repr__(self) -> str:
        return f"Keychain(member={self.member}, groups={sorted(self._keyrings)})"

    def keyring(self, group: int) -> GroupKeyring:
        """The keyring of `group`, empty until a rotation to this member is accepted."""
        return self._keyrings.setdefault(group, GroupKeyring(group, self.keep))

    def accept(self, rotator_public_key: bytes, origin: TxOrigin, rotation: KeyRotation) -> None:
        """Unwrap this member's key from a rotation on chain and hold it."""
        key = open_rotation(self.device, self.member, rotator_public_key, origin, rotation)
        self.keyring(rotation.group).add(key)

    def open(self, sender_public_key: bytes, origin: TxOrigin, sealed: bytes) -> bytes:
        """The plaintext of any sealed payload: to this device, or to one of its groups."""
        env = decode_envelope(sealed)
        if env.scope is Scope.DEVICE:
            return open_from_device(self.device, self.member, sender_public_key, origin, sealed)
        keyring = self._keyrings.get(env.target)
        if keyring is None or keyring.current is None:
            raise NotRecipient(f"sealed to group {env.target}; member {self.member} holds no key of it")
        return keyring.open(origin, sealed)
