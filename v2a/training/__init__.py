"""Lightning wiring: the V2A module, EMA and callbacks."""
