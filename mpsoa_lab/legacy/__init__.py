"""Layer 5, the 2014 code and its audit: the original router and settings, run on a real broker."""
