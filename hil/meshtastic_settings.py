"""What a virtual Meshtastic board keeps in flash, and the admin messages that read and change it. Pure.

`Settings` holds the owner, `LocalConfig`, `LocalModuleConfig`, the 8 channels and
the fixed position, and answers an `AdminMessage` from the host as firmware 2.7's
AdminModule (src/modules/AdminModule.cpp, v2.7.11) answers one from a local client:

- getters (owner, config, module config, channel, device metadata) answer with the
  value and the session passkey;
- setters (set_owner, set_config, set_module_config, set_channel, set_ham_mode,
  set_fixed_position / remove_fixed_position, favourite and ignored nodes,
  remove_by_nodenum, begin/commit_edit_settings, set_time_only, reboot_seconds) change
  the settings and, as the client asks for a response, are acknowledged with a Routing
  NONE; a blank (whitespace-only) name or an out-of-range channel index is a BAD_REQUEST;
- ham mode and a licensed owner clear every channel key (`ensureLicensedOperation`).

A local client needs no session passkey (the firmware checks it only for remote admin).
What follows from a change (a NodeInfo broadcast, new LoRa timing, a reboot) is the
board's business: `AdminResult` says what changed.

Not modelled: the firmware reboots a few seconds after most config changes; here they
take effect at once (as the firmware's own simulator radio does for LoRa changes), and
are kept for the life of the board object. Factory and node-DB resets, OTA, files and
remote-hardware requests are refused with BAD_REQUEST.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import reduce

from meshtastic.protobuf import admin_pb2, channel_pb2, config_pb2, localonly_pb2, mesh_pb2, module_config_pb2

from blockiot.radio.airtime import canonical_preset_name, preset_display_name

NUM_CHANNELS = 8
HAM_NODE_INFO_SECS = 600  # handleSetHamMode: the FCC's call-sign interval
MIN_NODE_INFO_SECS = 60 * 60  # Default.h min_node_info_broadcast_secs
DEFAULT_NODE_INFO_SECS = 3 * 60 * 60  # Default.h default_node_info_broadcast_secs
FIRMWARE_VERSION = "2.7.11.virtual"
DEVICE_STATE_VERSION = 24
# The default channel key (firmware Channels.h defaultpsk); PSK b"\x01" stands for it.
DEFAULT_PSK = bytes.fromhex("d4f1bb3a20290759f0bcffabcf4e6901")
# DisplayFormatters::getModemPresetDisplayName where it differs from ours (an unnamed channel's name).
_FIRMWARE_PRESET_NAMES = {"LONG_MODERATE": "LongMod", "VERY_LONG_SLOW": "Invalid"}
_ERROR = mesh_pb2.Routing.Error
_ROLE = channel_pb2.Channel.Role
_CONFIG_BY_NUMBER = {f.number: f.name for f in config_pb2.Config.DESCRIPTOR.fields}
_MODULE_BY_NUMBER = {f.number: f.name for f in module_config_pb2.ModuleConfig.DESCRIPTOR.fields}
_LOCAL_CONFIG_FIELDS = frozenset(f.name for f in localonly_pb2.LocalConfig.DESCRIPTOR.fields)
_LOCAL_MODULE_FIELDS = frozenset(f.name for f in localonly_pb2.LocalModuleConfig.DESCRIPTOR.fields)


def channel_hash(name: str, psk: bytes) -> int:
    """The channel byte of the radio header: XOR of the name's bytes and the expanded key's (Channels::generateHash)."""
    if len(psk) == 1:
        psk = b"" if psk[0] == 0 else DEFAULT_PSK[:-1] + bytes([(DEFAULT_PSK[-1] + psk[0] - 1) & 0xFF])
    return reduce(lambda h, b: h ^ b, name.encode() + psk, 0)


@dataclass
class AdminResult:
    """The answer to the host (`response`, else a Routing `error`, NONE being the ACK) and what changed."""

    response: admin_pb2.AdminMessage | None = None
    error: int = _ERROR.NONE
    owner_changed: bool = False
    lora_changed: bool = False
    forget_node: int | None = None
    node_flag: tuple[int, str, bool] | None = None  # (node number, "is_favorite" or "is_ignored", value)
    reboot_in: float | None = None


class Settings:
    """One board's persistent settings, as the firmware's NodeDB / Channels keep them."""

    def __init__(
        self, *, node_id: str, long_name: str, short_name: str, preset: str, hop_limit: int, region: str, passkey: bytes
    ) -> None:
        self.owner = mesh_pb2.User(
            id=node_id, long_name=long_name, short_name=short_name, hw_model=mesh_pb2.HardwareModel.PORTDUINO
        )
        self.config = localonly_pb2.LocalConfig()
        self.config.device.role = config_pb2.Config.DeviceConfig.Role.CLIENT
        self.config.device.node_info_broadcast_secs = DEFAULT_NODE_INFO_SECS
        lora = self.config.lora
        lora.use_preset = True
        lora.modem_preset = config_pb2.Config.LoRaConfig.ModemPreset.Value(canonical_preset_name(preset))
        lora.region = config_pb2.Config.LoRaConfig.RegionCode.Value(region)
        lora.hop_limit = hop_limit
        lora.tx_enabled = True
        self.config.bluetooth.enabled = False
        self.config.security.serial_enabled = True
        self.module_config = localonly_pb2.LocalModuleConfig()
        primary = channel_pb2.Channel(index=0, role=_ROLE.PRIMARY)
        primary.settings.psk = b"\x01"  # the default key; the empty name shows as the preset's name
        self.channels = [primary] + [channel_pb2.Channel(index=i, role=_ROLE.DISABLED) for i in range(1, NUM_CHANNELS)]
        self.position: mesh_pb2.Position | None = None
        self.editing = False  # begin_edit_settings .. commit_edit_settings
        self._passkey = passkey

    # -- reading ------------------------------------------------------------------------

    def config_variant(self, name: str) -> config_pb2.Config:
        """One `Config` variant as the firmware sends it in the config download."""
        config = config_pb2.Config()
        part = getattr(config, name)
        if name in _LOCAL_CONFIG_FIELDS:
            part.CopyFrom(getattr(self.config, name))
        else:
            part.SetInParent()  # sessionkey, device_ui: present and empty, as the firmware sends them
        return config

    def module_config_variant(self, name: str) -> module_config_pb2.ModuleConfig:
        module = module_config_pb2.ModuleConfig()
        getattr(module, name).CopyFrom(getattr(self.module_config, name))
        return module

    @property
    def preset_name(self) -> str | None:
        """The modem preset in use (canonical name), or None for explicit SF/BW/CR."""
        lora = self.config.lora
        return config_pb2.Config.LoRaConfig.ModemPreset.Name(lora.modem_preset) if lora.use_preset else None

    def channel_name(self, index: int) -> str:
        """Channels::getName: the channel's name, or for an unnamed one the preset's display name."""
        name = self.channels[index].settings.name
        if name:
            return name
        if self.preset_name is None:
            return "Custom"
        return _FIRMWARE_PRESET_NAMES.get(self.preset_name, preset_display_name(self.preset_name))

    def channel_hash(self, index: int) -> int:
        """The header's channel byte for channel `index` (the primary for an index out of range)."""
        channel = self.channels[index] if 0 <= index < NUM_CHANNELS else self.channels[0]
        psk = channel.settings.psk
        if not psk and channel.role == _ROLE.SECONDARY:
            psk = self.channels[0].settings.psk  # Channels::getKey: a secondary without a key uses the primary's
        return channel_hash(self.channel_name(channel.index), psk)

    def channel_index(self, hash_byte: int) -> int | None:
        """Our channel whose hash a packet carries, or None if we cannot read it."""
        for channel in self.channels:
            if channel.role != _ROLE.DISABLED and self.channel_hash(channel.index) == hash_byte:
                return channel.index
        return None

    # -- admin --------------------------------------------------------------------------

    def admin(self, request: admin_pb2.AdminMessage) -> AdminResult:
        """Handle an admin message from the local host."""
        variant = request.WhichOneof("payload_variant")
        handler = getattr(self, f"_admin_{variant}", None)
        if handler is None:
            return AdminResult(error=_ERROR.BAD_REQUEST)
        return handler(getattr(request, variant))

    def _answer(self, **field: object) -> AdminResult:
        return AdminResult(response=admin_pb2.AdminMessage(session_passkey=self._passkey, **field))

    def _admin_get_owner_request(self, _: bool) -> AdminResult:
        return self._answer(get_owner_response=self.owner)

    def _admin_get_config_request(self, kind: int) -> AdminResult:
        name = _CONFIG_BY_NUMBER.get(kind + 1)
        return AdminResult(error=_ERROR.BAD_REQUEST) if name is None else self._answer(get_config_response=self.config_variant(name))

    def _admin_get_module_config_request(self, kind: int) -> AdminResult:
        name = _MODULE_BY_NUMBER.get(kind + 1)
        if name is None:
            return AdminResult(error=_ERROR.BAD_REQUEST)
        return self._answer(get_module_config_response=self.module_config_variant(name))

    def _admin_get_channel_request(self, number: int) -> AdminResult:
        if not 1 <= number <= NUM_CHANNELS:
            return AdminResult(error=_ERROR.BAD_REQUEST)
        return self._answer(get_channel_response=self.channels[number - 1])

    def _admin_get_device_metadata_request(self, _: bool) -> AdminResult:
        return self._answer(get_device_metadata_response=self.metadata())

    def _admin_set_owner(self, user: mesh_pb2.User) -> AdminResult:
        for name in (user.long_name, user.short_name):
            if name and not name.strip():
                return AdminResult(error=_ERROR.BAD_REQUEST)  # "must contain at least 1 non-whitespace character"
        before = self.owner.SerializeToString()
        if user.long_name:
            self.owner.long_name = user.long_name[:39]
        if user.short_name:
            self.owner.short_name = user.short_name[:4]
        if user.id:
            self.owner.id = user.id
        self.owner.is_licensed = user.is_licensed
        if user.HasField("is_unmessagable"):
            self.owner.is_unmessagable = user.is_unmessagable
        if self.owner.is_licensed:
            self._licensed_operation()
        return AdminResult(owner_changed=self.owner.SerializeToString() != before)

    def _admin_set_config(self, config: config_pb2.Config) -> AdminResult:
        variant = config.WhichOneof("payload_variant")
        if variant not in _LOCAL_CONFIG_FIELDS:
            return AdminResult()  # sessionkey, device_ui: nothing kept
        before = self.config.lora.SerializeToString()
        getattr(self.config, variant).CopyFrom(getattr(config, variant))
        if variant == "device" and self.config.device.node_info_broadcast_secs < MIN_NODE_INFO_SECS:
            self.config.device.node_info_broadcast_secs = MIN_NODE_INFO_SECS
        if variant == "lora":
            lora = self.config.lora  # handleSetConfig's validation
            if not 4 <= lora.coding_rate <= 8:
                lora.coding_rate = 5
            if not 7 <= lora.spread_factor <= 12:
                lora.spread_factor = 11
            if lora.bandwidth == 0:
                lora.bandwidth = 250
        return AdminResult(lora_changed=self.config.lora.SerializeToString() != before)

    def _admin_set_module_config(self, module: module_config_pb2.ModuleConfig) -> AdminResult:
        variant = module.WhichOneof("payload_variant")
        if variant not in _LOCAL_MODULE_FIELDS:
            return AdminResult(error=_ERROR.BAD_REQUEST)
        getattr(self.module_config, variant).CopyFrom(getattr(module, variant))
        return AdminResult()

    def _admin_set_channel(self, channel: channel_pb2.Channel) -> AdminResult:
        if not 0 <= channel.index < NUM_CHANNELS:
            return AdminResult(error=_ERROR.BAD_REQUEST)
        if channel.role == _ROLE.PRIMARY:  # Channels::setChannel: a new primary demotes the old one
            for other in self.channels:
                if other.role == _ROLE.PRIMARY:
                    other.role = _ROLE.SECONDARY
        self.channels[channel.index].CopyFrom(channel)
        if self.owner.is_licensed:
            self._licensed_operation()
        return AdminResult()

    def _admin_set_ham_mode(self, ham: admin_pb2.HamParameters) -> AdminResult:
        for name in (ham.call_sign, ham.short_name):
            if name and not name.strip():
                return AdminResult()  # the firmware logs and ignores it
        self.owner.long_name = ham.call_sign[:39]
        self.owner.short_name = ham.short_name[:4]
        self.owner.is_licensed = True
        lora = self.config.lora
        lora.override_duty_cycle = True
        lora.tx_power = ham.tx_power
        lora.override_frequency = ham.frequency
        self.config.device.node_info_broadcast_secs = HAM_NODE_INFO_SECS
        self.config.device.rebroadcast_mode = config_pb2.Config.DeviceConfig.RebroadcastMode.LOCAL_ONLY
        self._licensed_operation()
        return AdminResult(owner_changed=True, lora_changed=True)

    def _admin_set_fixed_position(self, position: mesh_pb2.Position) -> AdminResult:
        self.position = mesh_pb2.Position()
        self.position.CopyFrom(position)
        self.config.position.fixed_position = True
        return AdminResult()

    def _admin_remove_fixed_position(self, _: bool) -> AdminResult:
        self.position = None
        self.config.position.fixed_position = False
        return AdminResult()

    def _admin_begin_edit_settings(self, _: bool) -> AdminResult:
        self.editing = True
        return AdminResult()

    def _admin_commit_edit_settings(self, _: bool) -> AdminResult:
        self.editing = False
        return AdminResult()

    def _admin_set_time_only(self, _: int) -> AdminResult:
        return AdminResult()  # the board's clock is the rig's

    def _admin_reboot_seconds(self, seconds: int) -> AdminResult:
        return AdminResult(reboot_in=max(seconds, 0))

    def _admin_set_favorite_node(self, num: int) -> AdminResult:
        return AdminResult(node_flag=(num, "is_favorite", True))

    def _admin_remove_favorite_node(self, num: int) -> AdminResult:
        return AdminResult(node_flag=(num, "is_favorite", False))

    def _admin_set_ignored_node(self, num: int) -> AdminResult:
        return AdminResult(node_flag=(num, "is_ignored", True))

    def _admin_remove_ignored_node(self, num: int) -> AdminResult:
        return AdminResult(node_flag=(num, "is_ignored", False))

    def _admin_remove_by_nodenum(self, num: int) -> AdminResult:
        return AdminResult(forget_node=num)

    def _licensed_operation(self) -> None:
        """Channels::ensureLicensedOperation: a licensed (ham) owner sends in the clear."""
        for channel in self.channels:
            if channel.settings.psk:
                channel.settings.psk = b""

    def metadata(self) -> mesh_pb2.DeviceMetadata:
        return mesh_pb2.DeviceMetadata(
            firmware_version=FIRMWARE_VERSION,
            device_state_version=DEVICE_STATE_VERSION,
            role=self.config.device.role,
            hw_model=mesh_pb2.HardwareModel.PORTDUINO,
        )
