"""faremeter adapter package."""
