"""Media path: RTP, jitter buffer, DTMF relay, SRTP, media clock."""
