"""Lightning callbacks: image grids, metrics files."""
