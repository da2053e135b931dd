"""The onboard web page and REST API (aiohttp on the gateway's loop); see web/server.py."""
