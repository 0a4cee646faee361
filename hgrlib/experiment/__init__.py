"""From a profile to numbers: the conditions compared, the profiles, training runs and their cache, launching
grids of runs, notebook setup (`prepare`) and the claims with their statistics."""
