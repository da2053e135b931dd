"""Call control: one sans-IO state machine per port, the dial plan, call features."""
