"""Tests of call control: the dial plan."""
