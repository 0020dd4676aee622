"""faremeter."""
