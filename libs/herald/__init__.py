"""Herald shared package."""
