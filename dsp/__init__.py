"""Pure telephony signal processing over numpy arrays (no gateway logic; WAV file I/O only in `wav`).

Blocks: g711 (companding), dtmf (detection and generation), tones (country call-progress tones and
ring cadences), callerid and fsk (on-hook / off-hook caller ID, alert signals, VMWI), level (dBm0),
synth (sine synthesis), resample (streaming integer-ratio resamplers), wav (files in and out).
"""
