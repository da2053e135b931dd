"""Hardware layer: the line interface, hook interpretation, ring cadences, and board backends."""
