"""Tests of the media path: RTP, RTCP statistics, jitter buffer."""
