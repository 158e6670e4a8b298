"""The field simulator: consensus nodes on a simulated LoRa channel in virtual time.

The channel (`medium`: path loss, airtime, collisions; `burstloss`: fading), Meshtastic's
managed flooding (`flooding`), the event loop, the field itself (`fieldsim`), its
scenarios and metrics, and the adversarial schedule search over consensus cores
(`adversary`). The virtual boards of the HIL rig (hil/) put their packets on the same
`medium`.
"""
