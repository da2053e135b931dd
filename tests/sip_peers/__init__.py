"""Real SIP peers (Kamailio registrar/proxy, baresip softphone) on loopback for end-to-end tests."""
