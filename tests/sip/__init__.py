"""Tests of the sans-IO SIP stack."""
