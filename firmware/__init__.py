"""The Hookflash gateway: command line now; SIP, media, call control and config as they land."""
