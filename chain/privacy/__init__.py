"""Private payloads: sealed to one device (X25519 from its Ed25519 key, PyNaCl `Box`) or to
a group (a group key, `SecretBox`), group keys rotated when membership changes.

Only ciphertext goes on chain. The 24-byte nonce derives from the carrying transaction
(chain id, sender, tx nonce, purpose) and is never sent: a sealed payload costs its
16-byte MAC, a 1-byte key epoch for a group, and its `to` varint (see `sealing`).
Pure: no clock, no IO, no randomness reached for. Key types redact secrets in `repr`.

- `keys`: `TxOrigin`, `derive_nonce`, `DeviceKey`, `GroupKey`
- `sealing`: the envelope, `seal_to_device` / `open_from_device`, `GroupKeyring`
- `rotation`: `rotate_group_key` / `open_rotation` and the rotation encoding
- `keychain`: `Keychain`, a node's device key and keyrings, `open` for any envelope
- `errors`: `PrivacyError`, `DecryptError` (`TamperedCiphertext`, `WrongEpoch`,
  `NotRecipient`), `PrivacyDecodeError`, `PrivacyEncodeError`
- `onchain`: what every node checks without keys (SEALED, KEY_ROTATION), groups, key
  epochs and the rotator; `holder`: a key holder's sealing, rotating and opening. Both
  import `chain.wire`, which imports this package: import them by their module path.
"""
from .errors import (
    DecryptError, NotRecipient, PrivacyDecodeError, PrivacyEncodeError, PrivacyError, TamperedCiphertext, WrongEpoch,
)
from .keychain import Keychain
from .keys import MAC_LEN, DeviceKey, GroupKey, Purpose, TxOrigin, derive_nonce, x25519_public_key
from .rotation import KeyRotation, WrappedKey, decode_rotation, encode_rotation, open_rotation, rotate_group_key
from .sealing import (
    Envelope,
    GroupKeyring,
    Scope,
    decode_envelope,
    encode_envelope,
    open_from_device,
    seal_to_device,
)

__all__ = [
    "DecryptError", "DeviceKey", "Envelope", "GroupKey", "GroupKeyring", "KeyRotation", "Keychain", "MAC_LEN",
    "NotRecipient", "PrivacyDecodeError", "PrivacyEncodeError", "PrivacyError", "Purpose", "Scope",
    "TamperedCiphertext", "TxOrigin", "WrappedKey", "WrongEpoch", "decode_envelope", "decode_rotation",
    "derive_nonce", "encode_envelope", "encode_rotation", "open_from_device", "open_rotation", "rotate_group_key",
    "seal_to_device", "x25519_public_key",
]
