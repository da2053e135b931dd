"""The onboard web page, its REST API under /api/v1 and the virtual handset; see web/server.py."""
