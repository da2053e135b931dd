"""Pure telephony signal processing over numpy arrays (no I/O, nothing of the gateway).

Blocks: g711 (companding), dtmf (detection and generation), tones (country call-progress tones and
ring cadences), callerid (on-hook FSK / DTMF caller ID, alerting signals, VMWI), level (dBm0).
"""
