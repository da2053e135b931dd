"""Faithful fakes of hardware modules (RPi.GPIO, pyalsaaudio, ...), put into sys.modules by tests."""
